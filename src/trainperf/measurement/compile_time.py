"""Compile time, cold versus warm cache, each measured in a fresh process.

In one process dynamo, AOTAutograd and Inductor keep in-memory caches that no public API clears, so a "cold"
compile after another case would be warm.  Each probe is a new interpreter with ``TORCHINDUCTOR_CACHE_DIR``
and ``TRITON_CACHE_DIR`` pointed at a directory: a fresh one for the cold run, the same one again for warm.
Run as ``python -m trainperf.measurement.compile_time CASE_JSON RESULT_FILE``; writes its numbers as JSON to
RESULT_FILE (not stdout, which a model, a library or a compiler may print on).

Autotuning is not compiling: with ``cudnn.benchmark`` on, the first step of each convolution shape times cuDNN's
algorithms, compiled or not. So a probe first runs the same case eagerly for one step and a few steady ones: that
tunes every convolution the compiled graph will call (cuDNN keeps its choices for the process) and measures the
cost on its own (``autotune_s``, the eager first step above a steady one). The compiled warm-up that follows
counts compilation, not tuning.

A probe's time limit is the smaller of ``PROBE_TIMEOUT_S`` and what is left before ``TRAINPERF_DEADLINE`` (a Unix
time a caller with a budget sets, as ``scripts/gpu-check.sh`` does), so a probe never outlives the run's budget;
it dies with its parent too (``child_process``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from trainperf import child_process
from trainperf.child_process import ChildError
from trainperf.measurement.cases import Case
from trainperf.measurement.checks import MeasurementError, require_graphs
from trainperf.measurement.measure import timed
from trainperf.results import CompileTime, Identity

PROBE_STEADY_STEPS = 5
PROBE_TIMEOUT_S = 1800.0
DEADLINE_ENV = "TRAINPERF_DEADLINE"


@dataclass(frozen=True)
class ProbeTimes:
    """What one probe process measured (its JSON to the parent), and how long the whole process took."""

    compile_s: float
    first_step_s: float
    steady_step_s: float
    autotune_s: float = 0.0
    process_s: float = 0.0


class CompileProbeError(MeasurementError):
    """A probe process failed; the message carries its output."""


def probe(case: Case, *, warmup_steps: int, tf32: bool, cudnn_benchmark: bool, seed: int) -> ProbeTimes:
    """In this process: tune the case's kernels eagerly, then build it compiled and time the warm-up steps one by
    one, then steady steps."""
    import torch

    from trainperf.machine.environment import apply_backend_flags
    from trainperf.measurement.models import build_model
    from trainperf.measurement.training import compile_counters

    torch.manual_seed(seed)
    apply_backend_flags(tf32=tf32, cudnn_benchmark=cudnn_benchmark)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(case.batch_size, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (case.batch_size,), generator=generator)
    autotune_s = _eager_first_step_excess(case, x, y)
    trainer = _trainer(case, build_model(case.model), x, y)
    at_start = compile_counters()
    warm = [timed(lambda: trainer.run(1), trainer.device) for _ in range(warmup_steps)]
    compiled = compile_counters().since(at_start).graphs
    if compiled is not None:  # a compile time of a case that compiled nothing would be a number about nothing
        require_graphs(case, compiled)
    steady = statistics.median(timed(lambda: trainer.run(1), trainer.device) for _ in range(PROBE_STEADY_STEPS))
    return ProbeTimes(
        compile_s=max(0.0, sum(warm) - len(warm) * steady),
        first_step_s=warm[0],
        steady_step_s=steady,
        autotune_s=autotune_s,
    )


def _trainer(case: Case, model: Any, x: Any, y: Any) -> Any:
    from trainperf.measurement.training import build_trainer

    trainer = build_trainer(case, model)
    trainer.batches = [trainer.to_input(x, y)]
    return trainer


def _eager_first_step_excess(case: Case, x: Any, y: Any) -> float:
    """The eager first step's time above a steady eager step: cuDNN autotuning (and first-launch costs) that a
    compiled first step would otherwise count as compile time. The eager model is freed before compiling."""
    import torch

    from trainperf.measurement.models import build_model

    first, steady = _first_and_steady(_trainer(replace(case, compile="eager"), build_model(case.model), x, y))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return max(0.0, first - steady)


def _first_and_steady(trainer: Any) -> tuple[float, float]:
    first = timed(lambda: trainer.run(1), trainer.device)
    steady = statistics.median(timed(lambda: trainer.run(1), trainer.device) for _ in range(PROBE_STEADY_STEPS))
    return first, steady


def probe_timeout_s(now: float | None = None) -> float:
    """``PROBE_TIMEOUT_S``, or less: what is left before ``TRAINPERF_DEADLINE`` when a caller set one."""
    raw = os.environ.get(DEADLINE_ENV)
    if not raw:
        return PROBE_TIMEOUT_S
    try:
        deadline = float(raw)
    except ValueError:
        raise CompileProbeError(f"{DEADLINE_ENV}={raw!r}: expected a Unix time in seconds") from None
    left = deadline - (time.time() if now is None else now)
    if left <= 0:
        raise CompileProbeError(f"no time left for a compile probe: {DEADLINE_ENV} passed {-left:.0f} s ago")
    return min(PROBE_TIMEOUT_S, left)


def run_probe(case: Case, cache_dir: Path, *, timeout_s: float, **kwargs: Any) -> ProbeTimes:
    """One probe in a child interpreter using ``cache_dir`` for Inductor and Triton caches."""
    env = dict(os.environ)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "inductor")
    env["TRITON_CACHE_DIR"] = str(cache_dir / "triton")
    # The child must import what this process imports (a user's model factory included).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    payload = json.dumps({"case": case.as_dict(), **kwargs})
    result_file = cache_dir / f"probe-{time.monotonic_ns()}.json"
    what = f"compile probe for {case.id}"
    command = [sys.executable, "-m", "trainperf.measurement.compile_time", payload, str(result_file)]
    try:
        done = child_process.run(command, what=what, env=env, timeout_s=timeout_s)
    except ChildError as exc:
        raise CompileProbeError(str(exc)) from None
    try:
        result = ProbeTimes(**json.loads(result_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise CompileProbeError(f"{what} exited 0 but left no result ({exc})") from None
    return replace(result, process_s=done.seconds)


def cold_and_warm(case: Case, *, timeout_s: float | None = None, **kwargs: Any) -> CompileTime:
    """Cold then warm compile time of ``case`` with a private cache directory; each probe's time limit is
    ``timeout_s`` or, when None, ``probe_timeout_s()`` when it starts."""
    with tempfile.TemporaryDirectory(prefix="trainperf-compile-") as tmp:
        cold = run_probe(case, Path(tmp), timeout_s=timeout_s or probe_timeout_s(), **kwargs)
        warm = run_probe(case, Path(tmp), timeout_s=timeout_s or probe_timeout_s(), **kwargs)
    return CompileTime(
        identity=Identity(case_id=case.id, config=case.as_dict()),
        compile_cold_s=round(cold.compile_s, 4),
        compile_warm_s=round(warm.compile_s, 4),
        warm_speedup=round(cold.compile_s / warm.compile_s, 3) if warm.compile_s > 0 else None,
        first_step_cold_s=round(cold.first_step_s, 4),
        first_step_warm_s=round(warm.first_step_s, 4),
        steady_step_s=round(warm.steady_step_s, 6),
        autotune_s=round(statistics.median([cold.autotune_s, warm.autotune_s]), 4),
        process_cold_s=round(cold.process_s, 3),
        process_warm_s=round(warm.process_s, 3),
    )


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    case = Case(**args.pop("case"))
    Path(argv[1]).write_text(json.dumps(asdict(probe(case, **args))), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
