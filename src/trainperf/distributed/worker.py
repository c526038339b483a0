"""One rank of a data-parallel training benchmark, started by torchrun.

Run as ``python -m torch.distributed.run ... -m trainperf.distributed.worker CONFIG_JSON``
(``trainperf.distributed.launch`` builds that command).  Every rank writes ``rank<N>.pid`` into the config's
``out_dir`` first, so a launcher that has to kill a hung run can find each process; a rank that fails writes
``rank<N>.error``; global rank 0 writes ``result.json``: the step-throughput result of ``measure.train_step``
over all ranks, plus the distributed facts (world size, backend, threads) and rank 0's telemetry.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from trainperf.measurement.cases import Case
from trainperf.results import DdpStep, Distributed, Identity

PEER_FAILED = "another rank failed its checks after the timed rounds"


class BarrierRounds:
    """The ``benchmark`` ``measure.train_step`` expects, for a rank: every round starts after a barrier, so
    all ranks open a window together; the window times itself, the launcher hands the times to pytest."""

    def __init__(self, barrier: Callable[[], None]) -> None:
        self.barrier = barrier

    def pedantic(
        self,
        target: Callable[[], None],
        setup: Callable[[], None] | None = None,
        rounds: int = 1,
        iterations: int = 1,
        warmup_rounds: int = 0,
    ) -> None:
        for _ in range(rounds):
            if setup is not None:
                setup()
            self.barrier()
            target()


def reduce_max_over_ranks(device: Any) -> Callable[[Sequence[float]], list[float]]:
    import torch
    import torch.distributed as dist

    def reduce_max(values: Sequence[float]) -> list[float]:
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return [float(v) for v in tensor.cpu()]

    return reduce_max


def report_stage(out: Path, rank: int, stage: str) -> None:
    """Where this rank is now: a launcher that has to kill a hung run says where each rank stopped."""
    (out / f"rank{rank}.stage").write_text(stage, encoding="utf-8")


def run(config: dict[str, Any], stage: Callable[[str], None]) -> DdpStep:
    """Build the case on this rank's device, wrap it in DistributedDataParallel and measure it."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    from trainperf.machine.environment import apply_backend_flags
    from trainperf.measurement import data, measure
    from trainperf.measurement.mfu import utilisation
    from trainperf.measurement.models import build_model
    from trainperf.measurement.training import STAGED_BATCHES, build_trainer, stage_batches
    from trainperf.telemetry import Sampler, open_gpu

    case = Case(**config["case"])
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(config["threads"])
    if case.device == "cuda":
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", torch.device("cuda", local_rank)
    else:
        backend, device = "gloo", torch.device("cpu")
    # device_id binds NCCL to this rank's GPU at once (and tells barrier() which device to use).
    stage(f"joining the {backend} process group")
    dist.init_process_group(
        backend,
        # Below the launch deadline, so a rank stuck in a collective fails with that error before it is killed.
        timeout=timedelta(seconds=0.9 * config["timeout_s"]),
        device_id=device if case.device == "cuda" else None,
    )
    # No try/finally around the rest: a failing rank must record its error (main does) before its sockets
    # close, or its peers' "connection reset" would look like the first failure.
    flags = apply_backend_flags(tf32=config["tf32"], cudnn_benchmark=config["cudnn_benchmark"])
    torch.manual_seed(config["seed"])  # the same initial weights everywhere; DDP broadcasts rank 0's anyway
    device_ids = [local_rank] if case.device == "cuda" else None
    stage("building the model and DistributedDataParallel (broadcasts rank 0's weights)")
    trainer = build_trainer(
        case, build_model(case.model), wrap=lambda m: DistributedDataParallel(m, device_ids=device_ids)
    )
    dataset = data.training_set(config["data_dir"], config["synthetic_images"], config["seed"])
    batch = case.batch_size

    def rank_slice(ds: Any) -> DistributedSampler:
        # Each rank stages batches from its own shard, as a DDP training loop would see them.
        return DistributedSampler(
            ds, num_replicas=world_size, rank=rank, shuffle=True, seed=config["seed"], drop_last=True
        )

    loader = data.make_loader(
        dataset, batch, seed=config["seed"], limit=batch * STAGED_BATCHES * world_size, sampler=rank_slice
    )
    stage("staging batches from this rank's shard")
    stage_batches(trainer, loader, STAGED_BATCHES)
    stage("warm-up, calibration and timed rounds")
    gpu = open_gpu(local_rank) if rank == 0 and case.device == "cuda" else None
    reduce_max = reduce_max_over_ranks(device)
    failure: measure.MeasurementError | None = None
    try:
        result = measure.train_step(
            BarrierRounds(dist.barrier),
            trainer,
            Sampler(gpu=gpu, period_s=config["sample_period_s"]),
            warmup_steps=config["warmup_steps"],
            rounds=config["rounds"],
            window_s=config["window_s"],
            steps=config["steps"],
            world_size=world_size,
            reduce_max=reduce_max,
            identity=Identity(case_id=case.id, config=case.as_dict()),
        )
    except measure.MeasurementError as exc:  # the checks after the last collective: loss, recompilation
        failure = exc
    # Fail together: a rank that raised alone would leave the others waiting in the next collective, on another
    # node until the process-group timeout.
    if reduce_max([1.0 if failure else 0.0])[0]:
        raise failure or measure.MeasurementError(PEER_FAILED)
    stage("waiting for the other ranks to finish")
    dist.barrier()
    dist.destroy_process_group()
    per_device = result.throughput.img_per_s / world_size
    # Per device, after every collective; the FLOPs of the model inside the DDP wrapper (counted on a copy).
    mfu = utilisation(trainer.model, case, per_device, tf32=config["tf32"]) if rank == 0 else None
    placement = Distributed(
        world_size=world_size,
        img_per_s_per_device=round(per_device, 3),
        nnodes=config["nnodes"],
        nproc_per_node=int(os.environ.get("LOCAL_WORLD_SIZE", world_size)),
        backend=backend,
        threads_per_rank=torch.get_num_threads(),
        global_batch_size=batch * world_size,
        telemetry_rank=0,
        torch=torch.__version__,
        nccl_version=_nccl_version() if backend == "nccl" else None,
    )
    identity = replace(result.identity, backend_flags=flags)
    return DdpStep.of(result, placement, identity=identity, utilisation=mfu)


def _nccl_version() -> str | None:
    import torch

    try:
        version = torch.cuda.nccl.version()
    except Exception:  # a build without NCCL bindings: the version is unknown, not an error
        return None
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    out = Path(config["out_dir"])
    rank = int(os.environ.get("RANK", "0"))
    (out / f"rank{rank}.pid").write_text(str(os.getpid()), encoding="utf-8")
    report_stage(out, rank, "importing torch")
    try:
        result = run(config, lambda text: report_stage(out, rank, text))
    except BaseException:
        # The first line orders the failures: file times are too coarse on some filesystems.
        _write_atomic(out / f"rank{rank}.error", f"{time.time_ns()}\n{traceback.format_exc()}")
        raise
    if rank == 0:
        _write_atomic(out / "result.json", json.dumps(result.to_extra_info()))
    report_stage(out, rank, "done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
