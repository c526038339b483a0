"""Compile time, cold versus warm cache, each measured in a fresh process.

In one process dynamo, AOTAutograd and Inductor keep in-memory caches that no public API clears, so a "cold"
compile after another case would be warm.  Each probe is a new interpreter with ``TORCHINDUCTOR_CACHE_DIR``
and ``TRITON_CACHE_DIR`` pointed at a directory: a fresh one for the cold run, the same one again for warm.
Run as ``python -m trainperf.compile_time CASE_JSON RESULT_FILE``; writes its numbers as JSON to RESULT_FILE (not
stdout, which a model, a library or a compiler may print on).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trainperf.cases import Case
from trainperf.measure import MeasurementError, require_graphs, timed

PROBE_STEADY_STEPS = 5


class CompileProbeError(MeasurementError):
    """A probe process failed; the message carries its output."""


def probe(case: Case, *, warmup_steps: int, tf32: bool, cudnn_benchmark: bool, seed: int) -> dict[str, Any]:
    """In this process: build the case, time the warm-up steps one by one, then steady steps."""
    import torch

    from trainperf.environment import apply_backend_flags
    from trainperf.models import build_model
    from trainperf.training import build_trainer, compile_counters

    torch.manual_seed(seed)
    apply_backend_flags(tf32=tf32, cudnn_benchmark=cudnn_benchmark)
    trainer = build_trainer(case, build_model(case.model))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(case.batch_size, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (case.batch_size,), generator=generator)
    trainer.batches = [trainer.to_input(x, y)]
    at_start = compile_counters()
    warm = [timed(lambda: trainer.run(1), trainer.device) for _ in range(warmup_steps)]
    if at_start:  # a compile time of a case that compiled nothing would be a number about nothing
        require_graphs(case, compile_counters()["graphs"] - at_start["graphs"])
    steady = statistics.median(timed(lambda: trainer.run(1), trainer.device) for _ in range(PROBE_STEADY_STEPS))
    return {
        "compile_s": max(0.0, sum(warm) - len(warm) * steady),
        "first_step_s": warm[0],
        "steady_step_s": steady,
    }


def run_probe(case: Case, cache_dir: Path, *, timeout_s: float, **kwargs: Any) -> dict[str, Any]:
    """One probe in a child interpreter using ``cache_dir`` for Inductor and Triton caches."""
    env = dict(os.environ)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir / "inductor")
    env["TRITON_CACHE_DIR"] = str(cache_dir / "triton")
    # The child must import what this process imports (a user's model factory included).
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    payload = json.dumps({"case": case.as_dict(), **kwargs})
    result_file = cache_dir / f"probe-{time.monotonic_ns()}.json"
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trainperf.compile_time", payload, str(result_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CompileProbeError(f"compile probe for {case.id} timed out after {timeout_s:.0f} s") from exc
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise CompileProbeError(f"compile probe for {case.id} exited with {done.returncode}:\n{tail}")
    try:
        result = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CompileProbeError(f"compile probe for {case.id} exited 0 but left no result ({exc})") from None
    result["process_s"] = wall
    return result


def cold_and_warm(case: Case, *, timeout_s: float = 1800.0, **kwargs: Any) -> dict[str, Any]:
    """Cold then warm compile time of ``case`` with a private cache directory."""
    with tempfile.TemporaryDirectory(prefix="trainperf-compile-") as tmp:
        cold = run_probe(case, Path(tmp), timeout_s=timeout_s, **kwargs)
        warm = run_probe(case, Path(tmp), timeout_s=timeout_s, **kwargs)
    return {
        "compile_cold_s": round(cold["compile_s"], 4),
        "compile_warm_s": round(warm["compile_s"], 4),
        "warm_speedup": round(cold["compile_s"] / warm["compile_s"], 3) if warm["compile_s"] > 0 else None,
        "first_step_cold_s": round(cold["first_step_s"], 4),
        "first_step_warm_s": round(warm["first_step_s"], 4),
        "steady_step_s": round(warm["steady_step_s"], 6),
        "process_cold_s": round(cold["process_s"], 3),
        "process_warm_s": round(warm["process_s"], 3),
    }


def main(argv: list[str]) -> int:
    args = json.loads(argv[0])
    case = Case(**args.pop("case"))
    Path(argv[1]).write_text(json.dumps(probe(case, **args)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
