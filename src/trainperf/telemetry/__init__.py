"""GPU (NVML) and process-memory telemetry, sampled in the background during timed benchmark rounds.

nvml finds the GPU torch uses and says what else is using it, sampler reads NVML and /proc/self/statm
on a thread while the rounds run, and summary turns those samples into medians, maxima and throttle
flags. Importing the package imports neither torch nor pynvml (nvidia-ml-py): the pytest plugin's
modules import it, and every pytest run in the environment loads that plugin.
"""

from __future__ import annotations

from trainperf.telemetry.nvml import GpuIdentity, TelemetryWarning, gpu_busy_report, open_gpu
from trainperf.telemetry.sampler import Sampler
from trainperf.telemetry.summary import TelemetrySummary

__all__ = [
    "GpuIdentity",
    "Sampler",
    "TelemetrySummary",
    "TelemetryWarning",
    "gpu_busy_report",
    "open_gpu",
]
