"""Before the first CUDA case: is the GPU ours alone?  A shared or busy GPU makes every verdict meaningless."""

from __future__ import annotations

from typing import Any

# NVML's utilization is the share of the last sample period with any kernel running; an idle GPU reads 0.
BUSY_UTIL_PCT = 10


def busy_reasons(report: dict[str, Any]) -> list[str]:
    """Why the GPU is not idle, from ``telemetry.gpu_busy_report``; empty when it is (or NVML cannot tell)."""
    reasons = []
    others = report.get("other_processes")
    if others:
        reasons.append(f"{len(others)} other process(es) compute on it (pid {', '.join(map(str, others[:5]))})")
    util = report.get("gpu_util_pct")
    if util is not None and util > BUSY_UTIL_PCT:
        reasons.append(f"it is already {util}% busy")
    return reasons


def check_gpu(device_index: int) -> list[str]:
    """The busy reasons of the CUDA device torch uses (NVML unavailable: no reasons, telemetry has warned)."""
    from trainperf.telemetry import gpu_busy_report, open_gpu

    opened = open_gpu(device_index)
    if opened is None:
        return []
    return busy_reasons(gpu_busy_report(opened[0]))
