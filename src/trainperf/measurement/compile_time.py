"""Compile time, cold versus warm cache, each measured in a fresh process.

In one process dynamo, AOTAutograd and Inductor keep in-memory caches that no public API clears, so a "cold"
compile after another case would be warm.  Each probe is a new interpreter with ``TORCHINDUCTOR_CACHE_DIR``
and ``TRITON_CACHE_DIR`` pointed at a directory: a fresh one for the cold run, the same one again for warm.
Run as ``python -m trainperf.measurement.compile_time CASE_JSON RESULT_FILE``; writes its numbers as JSON to
RESULT_FILE (not stdout, which a model, a library or a compiler may print on).
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
from trainperf.measurement.measure import MeasurementError, require_graphs, timed
from trainperf.results import CompileTime, Identity

PROBE_STEADY_STEPS = 5


@dataclass(frozen=True)
class ProbeTimes:
    """What one probe process measured (its JSON to the parent), and how long the whole process took."""

    compile_s: float
    first_step_s: float
    steady_step_s: float
    process_s: float = 0.0


class CompileProbeError(MeasurementError):
    """A probe process failed; the message carries its output."""


def probe(case: Case, *, warmup_steps: int, tf32: bool, cudnn_benchmark: bool, seed: int) -> ProbeTimes:
    """In this process: build the case, time the warm-up steps one by one, then steady steps."""
    import torch

    from trainperf.machine.environment import apply_backend_flags
    from trainperf.measurement.models import build_model
    from trainperf.measurement.training import build_trainer, compile_counters

    torch.manual_seed(seed)
    apply_backend_flags(tf32=tf32, cudnn_benchmark=cudnn_benchmark)
    trainer = build_trainer(case, build_model(case.model))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(case.batch_size, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (case.batch_size,), generator=generator)
    trainer.batches = [trainer.to_input(x, y)]
    at_start = compile_counters()
    warm = [timed(lambda: trainer.run(1), trainer.device) for _ in range(warmup_steps)]
    compiled = compile_counters().since(at_start).graphs
    if compiled is not None:  # a compile time of a case that compiled nothing would be a number about nothing
        require_graphs(case, compiled)
    steady = statistics.median(timed(lambda: trainer.run(1), trainer.device) for _ in range(PROBE_STEADY_STEPS))
    return ProbeTimes(compile_s=max(0.0, sum(warm) - len(warm) * steady), first_step_s=warm[0], steady_step_s=steady)


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


def cold_and_warm(case: Case, *, timeout_s: float = 1800.0, **kwargs: Any) -> CompileTime:
    """Cold then warm compile time of ``case`` with a private cache directory."""
    with tempfile.TemporaryDirectory(prefix="trainperf-compile-") as tmp:
        cold = run_probe(case, Path(tmp), timeout_s=timeout_s, **kwargs)
        warm = run_probe(case, Path(tmp), timeout_s=timeout_s, **kwargs)
    return CompileTime(
        identity=Identity(case_id=case.id, config=case.as_dict()),
        compile_cold_s=round(cold.compile_s, 4),
        compile_warm_s=round(warm.compile_s, 4),
        warm_speedup=round(cold.compile_s / warm.compile_s, 3) if warm.compile_s > 0 else None,
        first_step_cold_s=round(cold.first_step_s, 4),
        first_step_warm_s=round(warm.first_step_s, 4),
        steady_step_s=round(warm.steady_step_s, 6),
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
