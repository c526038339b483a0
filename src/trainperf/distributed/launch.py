"""Data-parallel benchmarks: one torchrun launch per world size, its result, its failure, its cleanup.

torchrun (``python -m torch.distributed.run``) starts the ranks of ``trainperf.distributed.worker``; this module
builds the command, waits with a deadline, and reads back what global rank 0 wrote.  A launch that fails shows
the failing rank's error; one that outlives its deadline has every process it started killed (torchrun puts
each worker in a session of its own, so killing torchrun's process group is not enough).

No pytest here: the pytest layer turns ``DistributedError`` into a failed case.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainperf.child_process import Child, ChildError, alive
from trainperf.distributed.worker import PEER_FAILED
from trainperf.machine.environment import usable_cores as usable_cpus
from trainperf.measurement.cases import DistributedCase
from trainperf.measurement.measure import MeasurementError

ERROR_TAIL_LINES = 25


class DistributedError(MeasurementError):
    """A distributed launch failed or timed out; the message carries the failing rank's output."""


@dataclass(frozen=True)
class LaunchConfig:
    """What every rank needs besides its case: the measurement settings and the rendezvous."""

    warmup_steps: int
    rounds: int
    window_s: float
    steps: int | None
    seed: int
    tf32: bool
    cudnn_benchmark: bool
    data_dir: str | None
    synthetic_images: int
    sample_period_s: float
    timeout_s: float
    rdzv_endpoint: str | None = None
    rdzv_id: str = "trainperf"


@dataclass
class Launch:
    """A finished launch: rank 0's result (None when global rank 0 ran on another node) and its wall time."""

    result: dict[str, Any] | None
    wall_s: float
    command: list[str]


def threads_per_rank(per_node: int, cpus: int) -> int:
    """Threads of each CPU rank when at most ``per_node`` ranks share a node's ``cpus`` cores.

    The launcher is given the largest processes-per-node of the case's world sizes, so every world size of a
    case runs its ranks with the same threads, as every GPU rank has one GPU: the scaling curve then measures
    communication and overlap, not a thread count shrinking as ranks are added.
    """
    return max(1, cpus // max(1, per_node))


def capacity_reason(dcase: DistributedCase, *, gpus_per_node: int, cpus: int) -> str | None:
    """Why this node cannot host its share of the ranks, or None."""
    per_node = dcase.nproc_per_node
    nodes = f" on {dcase.nnodes} nodes" if dcase.nnodes > 1 else ""
    if dcase.case.device == "cuda" and per_node > gpus_per_node:
        return (
            f"world size {dcase.world_size}{nodes} needs {per_node} GPUs per node; this node has "
            f"{gpus_per_node} visible"
        )
    if dcase.case.device == "cpu" and per_node > cpus:
        return f"world size {dcase.world_size}{nodes} needs {per_node} CPU cores per node; this node has {cpus}"
    return None


def endpoint_in_use(endpoint: str) -> bool:
    """Whether ``HOST:PORT`` names an address of this node whose port something already listens on.

    torchrun on the rendezvous host that cannot bind the port connects to it instead, as if another node held
    the store, and waits until the deadline; checked first, that is an immediate, clear failure.  An endpoint
    on another host cannot be checked from here and is reported as free.
    """
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return False
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # TIME_WAIT from the previous launch on the same port is not "in use"; a listener is.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def torchrun_command(dcase: DistributedCase, config: LaunchConfig, payload: str) -> list[str]:
    """The torchrun command line for ``dcase``: a standalone rendezvous on a free port for one node without an
    endpoint, a c10d rendezvous at the endpoint otherwise (the same command on every node)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--max-restarts", "0"]
    if config.rdzv_endpoint is None:
        command += ["--standalone", "--nnodes", "1"]
    else:
        command += [
            "--nnodes",
            str(dcase.nnodes),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            config.rdzv_endpoint,
            "--rdzv-id",
            f"{config.rdzv_id}-{dcase.id}",
        ]
    return [*command, "--nproc-per-node", str(dcase.nproc_per_node), "-m", "trainperf.distributed.worker", payload]


def launch(dcase: DistributedCase, config: LaunchConfig, *, max_per_node: int | None = None) -> Launch:
    """Run ``dcase`` under torchrun and return rank 0's result.

    ``max_per_node`` is the most ranks per node any world size of this case runs with (default: this one's); it
    sets the threads of CPU ranks.

    Raises:
        DistributedError: a rank failed (its error is in the message), torchrun failed, or the launch ran past
            ``config.timeout_s`` (every process it started is killed first).
    """
    # Only one node is sure to host the store; across nodes a port in use shows as a rendezvous timeout.
    if config.rdzv_endpoint is not None and dcase.nnodes == 1 and endpoint_in_use(config.rdzv_endpoint):
        raise DistributedError(
            f"distributed launch of {dcase.id}: port of --trainperf-rdzv-endpoint {config.rdzv_endpoint} is "
            f"already in use on this node (another job, or a run that did not exit); pick a free port"
        )
    cpus = usable_cpus()
    env = dict(os.environ)
    env.setdefault("LOGLEVEL", "INFO")  # torchrun's rendezvous progress, shown when a launch fails
    # The ranks must import what this process imports (a user's model factory included).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    threads = threads_per_rank(max(dcase.nproc_per_node, max_per_node or 0), cpus)
    # Set for CUDA ranks too: torchrun's default (1 thread, only with several ranks per node) would differ
    # between world size 1 and the others.
    env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="trainperf-ddp-") as tmp:
        out = Path(tmp)
        payload = json.dumps(
            {
                "case": dcase.case.as_dict(),
                "out_dir": str(out),
                "nnodes": dcase.nnodes,
                "threads": threads,
                **asdict(config),
            }
        )
        command = torchrun_command(dcase, config, payload)
        log_path = out / "torchrun.log"
        returncode, wall, stray = _run_torchrun(dcase, config, command, env, log_path)
        if returncode != 0:
            raise DistributedError(
                f"distributed launch of {dcase.id} failed: torchrun exited with {returncode}"
                + (f"; killed {len(stray)} leftover process(es)" if stray else "")
                + f"\n{_output_tail(out, log_path)}"
            )
        result_path = out / "result.json"
        if not result_path.exists():
            if dcase.nnodes > 1:
                return Launch(None, wall, command)
            raise DistributedError(
                f"distributed launch of {dcase.id} exited 0 but rank 0 wrote no result\n{_tail(log_path)}"
            )
        return Launch(json.loads(result_path.read_text(encoding="utf-8")), wall, command)


def _run_torchrun(
    dcase: DistributedCase, config: LaunchConfig, command: list[str], env: dict[str, str], log_path: Path
) -> tuple[int, float, list[int]]:
    """torchrun's exit status, its wall time and the leftover processes killed after it exited.

    torchrun leads a session of its own and dies with this process; each worker leads another, so besides
    torchrun's tree the ranks' pid files name what to kill (a worker outlives a torchrun that crashed).
    """
    what = f"distributed launch of {dcase.id}"
    out = log_path.parent
    try:
        with (
            log_path.open("wb") as log,
            Child(
                command,
                what=what,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                strays=lambda running: _worker_pids(out, torchrun_running=running),
            ) as child,
        ):
            returncode = child.wait(config.timeout_s)
            wall = child.seconds()
            # torchrun reaps its workers; one that survived a torchrun crash must not outlive the case.
            return returncode, wall, child.kill()
    except ChildError as exc:
        if not exc.timed_out:
            raise DistributedError(str(exc)) from None
        raise DistributedError(
            f"{what} timed out after {config.timeout_s:g} s (--trainperf-dist-timeout-s); killed "
            f"{len(exc.killed)} process(es): {' '.join(map(str, exc.killed)) or 'none left'}\n"
            f"{_stages(out, dcase)}\n{_output_tail(out, log_path)}"
        ) from None


def _stages(out: Path, dcase: DistributedCase) -> str:
    """Where each rank of this node was when the launch was stopped."""
    lines = []
    for rank in range(dcase.world_size):
        path = out / f"rank{rank}.stage"
        if path.exists():
            lines.append(f"  rank {rank}: {path.read_text(encoding='utf-8', errors='replace')}")
    if not lines:
        return "no rank of this node started"
    return "ranks of this node at the deadline:\n" + "\n".join(lines)


def _output_tail(out: Path, log_path: Path) -> str:
    """The failing ranks' errors, earliest first (later ones are usually peers losing their connection), or
    the end of torchrun's output when no rank got as far as reporting."""
    # A rank that only failed because a peer did comes after every rank with a cause of its own.
    errors = sorted(_rank_error(path) for path in out.glob("rank*.error"))
    if not errors:
        return f"torchrun output (last {ERROR_TAIL_LINES} lines):\n{_tail(log_path)}"
    *_, first, lines = errors[0]
    others = errors[1:]
    parts = [f"{first} failed first:\n" + "\n".join(lines[-ERROR_TAIL_LINES:])]
    parts += [f"{rank} also failed: {text[-1] if text else '?'}" for _, _, rank, text in others]
    return "\n".join(parts)


def _rank_error(path: Path) -> tuple[bool, int, str, list[str]]:
    """(only a peer's failure, when, which rank, traceback lines) of a rank's error file; sorting these puts
    the ranks with a cause of their own first, earliest first."""
    when, _, text = path.read_text(encoding="utf-8", errors="replace").partition("\n")
    lines = text.strip().splitlines()
    return bool(lines) and PEER_FAILED in lines[-1], (int(when) if when.isdigit() else 0), path.stem, lines


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    except OSError:
        return "(no output)"
    return "\n".join(lines[-ERROR_TAIL_LINES:]) or "(no output)"


def _worker_pids(out: Path, *, torchrun_running: bool) -> list[int]:
    pids = []
    for path in out.glob("rank*.pid"):
        try:
            pid = int(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _is_worker(pid, out, torchrun_running=torchrun_running):
            pids.append(pid)
    return pids


def _is_worker(pid: int, out: Path, *, torchrun_running: bool) -> bool:
    """Whether ``pid`` is still a rank of this launch, not a recycled pid of something else (another trainperf
    run's rank included): its command line holds this launch's private directory where /proc exists; elsewhere
    only while torchrun, which has not reaped its workers, still runs."""
    if not Path("/proc/self").exists():
        return torchrun_running and alive(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"trainperf.distributed.worker" in cmdline and json.dumps(str(out)).encode() in cmdline
