"""Analysis of the samples: medians and maxima per metric, and throttling over the window and per round.

Pure logic over plain tuples; it imports neither NVML nor torch.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field, fields
from typing import Any

# Clock-event reason bits. nvidia-ml-py renamed nvmlClocksThrottleReason* to nvmlClocksEventReason*
# (from the r535 generation) and marks the old names for removal in CUDA 14; the bit values are NVML ABI and never
# changed, so they are spelled out here instead of depending on which names a binding exports.
# Only these five slow the clocks below what the workload asks for. GPU idle, application-clock
# setting, sync boost and display clock are policy or "nothing to do", not throttling.
_THROTTLE_BITS: tuple[tuple[int, str], ...] = (
    (0x04, "sw_power_cap"),
    (0x08, "hw_slowdown"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
)
_THROTTLE_MASK = sum(bit for bit, _ in _THROTTLE_BITS)


@dataclass
class TelemetrySummary:
    """Aggregate of one sampling window. GPU fields are None when NVML could not measure them."""

    samples: int
    gpu_util_pct: float | None  # median
    gpu_util_pct_mean: float | None
    mem_util_pct: float | None  # median; memory-controller busy time, not memory used
    gpu_mem_used_mib: float | None  # max; whole device, all processes
    sm_clock_mhz: float | None  # median
    power_w: float | None  # median
    temperature_c: float | None  # max
    # Any sample with power or thermal throttling; None when NVML cannot report clock reasons.
    throttled: bool | None
    # Names of the throttling reasons seen (never idle or application-clock reasons).
    throttle_reasons: list[str]
    rss_peak_mib: float | None  # this process; Linux only
    # One flag per round: from each Sampler.mark() to the next mark() or stop().
    throttled_rounds: list[bool | None] = field(default_factory=list)

    def as_extra_info(self) -> dict[str, Any]:
        """Flat JSON-safe dict for pytest-benchmark's extra_info, keyed by field name."""
        info: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, list):
                value = list(value)
            elif isinstance(value, float):
                value = round(value, 1)  # noisier than a tenth; clocks are whole MHz already
            info[item.name] = value
        return info


def _whole(value: float | None) -> float | None:
    return None if value is None else float(round(value))


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _maximum(values: list[float]) -> float | None:
    return float(max(values)) if values else None


def _throttle_flag(reasons: list[int | None]) -> bool | None:
    known = [bits for bits in reasons if bits is not None]
    if not known:
        return None
    return any(bits & _THROTTLE_MASK for bits in known)


# Column order of a sample row, as Sampler._sample writes it.
_UTIL, _MEM_UTIL, _MEM_USED, _SM_CLOCK, _POWER, _TEMP, _REASONS, _RSS = range(8)
_Row = tuple[Any, ...]


def _summarise(rows: list[_Row], marks: list[int]) -> TelemetrySummary:
    columns: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 8

    def known(column: int) -> list[Any]:
        return [value for value in columns[column] if value is not None]

    utilization = known(_UTIL)
    reasons_seen = 0
    for bits in known(_REASONS):
        reasons_seen |= bits
    # Each mark() opens a round that the next mark() or stop() closes, so pytest-benchmark's
    # pedantic(setup=sampler.mark) gives one flag per round. A boundary sample belongs to the round
    # it closes, so every round holds at least one sample even when shorter than the period.
    bounds = [*marks, len(rows) - 1] if marks else []
    throttled_rounds = [
        _throttle_flag([row[_REASONS] for row in rows[start + 1 : end + 1]])
        for start, end in itertools.pairwise(bounds)
    ]
    return TelemetrySummary(
        samples=len(rows),
        gpu_util_pct=_median(utilization),
        gpu_util_pct_mean=float(statistics.fmean(utilization)) if utilization else None,
        mem_util_pct=_median(known(_MEM_UTIL)),
        gpu_mem_used_mib=_maximum(known(_MEM_USED)),
        sm_clock_mhz=_whole(_median(known(_SM_CLOCK))),
        power_w=_median(known(_POWER)),
        temperature_c=_maximum(known(_TEMP)),
        throttled=_throttle_flag(list(columns[_REASONS])),
        throttle_reasons=[name for bit, name in _THROTTLE_BITS if reasons_seen & bit],
        rss_peak_mib=_maximum(known(_RSS)),
        throttled_rounds=throttled_rounds,
    )
