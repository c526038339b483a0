"""The background Sampler: NVML metrics and this process's resident memory, sampled during timed rounds.

The thread calls only NVML and reads /proc/self/statm; summary.py turns its rows into a TelemetrySummary.
pynvml is imported at start(), never at import.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from trainperf.telemetry.nvml import (
    _MIB,
    _NO_ERRORS,
    _NVML_CLOCK_SM,
    _NVML_TEMPERATURE_GPU,
    GpuIdentity,
    _nvml_errors,
    _pynvml_or_warn,
    _warn_once,
)
from trainperf.telemetry.summary import TelemetrySummary, _Row, _summarise

_THREAD_NAME = "trainperf-sampler"


class Sampler:
    """Background sampler of GPU (NVML) metrics and this process's resident memory.

    Usage::

        s = Sampler(gpu=open_gpu(...), period_s=0.1)
        s.start(); ...timed work...; summary = s.stop()

    or ``with Sampler(...) as s: ...`` and then ``s.summary``. start() takes one sample at once,
    stop() a final one, so even a window shorter than the period has two. Each start()/stop()
    pair is an independent window. mark() at the start of each round (pedantic's setup=) yields
    one throttle flag per round, from that mark to the next mark or stop(), in
    summary.throttled_rounds.

    The thread only calls NVML (C calls that release the GIL) and reads /proc/self/statm: about
    ten calls per tick, a few tens of microseconds every 100 ms. It never calls torch, which would
    contend for the CUDA context and the allocator with the timed work. An NVMLError costs that
    metric its value for one sample; NotSupported, or no binding for the function, disables the
    metric for the rest of the window.
    """

    _JOIN_TIMEOUT_MIN_S = 2.0

    def __init__(
        self,
        gpu: tuple[Any, GpuIdentity] | None = None,
        *,
        period_s: float = 0.1,
        nvml: ModuleType | None = None,
    ) -> None:
        """Args:
        gpu: (handle, identity) from open_gpu, or None to sample process memory only.
        period_s: seconds between samples.
        nvml: a module with pynvml's interface; pynvml is imported at start() when None.
        """
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s!r}")
        self.gpu = gpu
        self.period_s = period_s
        self.summary: TelemetrySummary | None = None
        self._nvml = nvml
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._rows: list[_Row] = []
        self._marks: list[int] = []
        self._probes: dict[str, list[Callable[[], Any]]] = {}
        self._disabled: list[str] = []
        self._errors = _NO_ERRORS
        self._statm_fd: int | None = None
        self._page_mib = 0.0

    # -- window lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Open a window: take one sample now and start the sampling thread."""
        if self._thread is not None:
            raise RuntimeError("Sampler.start() called while already sampling; call stop() first")
        self._rows = []
        self._marks = []
        self._thread_error = None
        # A fresh event per window: a thread left stuck by an earlier window keeps its own, set one.
        self._stop_event = threading.Event()
        self._probes = self._make_probes()
        # A function the binding does not have is as unsupported as one that answers NotSupported.
        self._disabled = [metric for metric, candidates in self._probes.items() if not candidates]
        self._open_statm()
        self._sample()
        self._thread = threading.Thread(target=self._run, args=(self._stop_event,), name=_THREAD_NAME, daemon=True)
        self._thread.start()

    def mark(self) -> None:
        """Start a round (closing the previous one); costs one sample, so call it outside timing."""
        if self._thread is None:
            raise RuntimeError("Sampler.mark() called outside a start()/stop() window")
        self._sample(mark=True)

    def stop(self) -> TelemetrySummary:
        """Close the window: stop the thread, take a final sample and aggregate."""
        thread = self._thread
        if thread is None:
            raise RuntimeError("Sampler.stop() called without start()")
        self._stop_event.set()
        # A hung NVML call must not hang the benchmark; the daemon thread dies with the process.
        join_timeout_s = max(self._JOIN_TIMEOUT_MIN_S, 10 * self.period_s)
        thread.join(timeout=join_timeout_s)
        stuck = thread.is_alive()
        self._thread = None
        if stuck:
            # The stuck thread holds the lock inside an NVML call: no final sample, and the rows
            # are copied without the lock (that thread cannot append while it is blocked).
            rows, marks, disabled = list(self._rows), list(self._marks), list(self._disabled)
        else:
            self._sample()
            with self._lock:
                rows, marks = list(self._rows), list(self._marks)
                disabled = list(self._disabled)
        if not stuck:
            # A stuck thread may still read the fd; closing it could let a reused fd number
            # point at another file, so it is left open in that (already broken) case.
            self._close_statm()
        self.summary = _summarise(rows, marks)
        if stuck:
            _warn_once(
                "sampler-stuck",
                f"trainperf telemetry: the sampling thread did not stop within "
                f"{join_timeout_s:.1f} s (hung NVML call?); it is left running as a daemon",
            )
        if self._thread_error is not None:
            _warn_once(
                "sampler-error",
                f"trainperf telemetry: the sampling thread failed "
                f"({type(self._thread_error).__name__}: {self._thread_error}); later samples are missing",
            )
        if disabled and self.gpu is not None:
            _warn_once(
                "metric-unsupported",
                f"trainperf telemetry: NVML cannot report {', '.join(disabled)} on GPU "
                f"{self.gpu[1].index} ({self.gpu[1].name}); recorded as None",
            )
        return self.summary

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- sampling ---------------------------------------------------------------------------

    def _make_probes(self) -> dict[str, list[Callable[[], Any]]]:
        """Per metric, the NVML calls to try in order; a later one replaces a missing earlier one."""
        if self.gpu is None:
            return {}
        handle, identity = self.gpu
        if identity.mig:
            # open_gpu has already warned; on a MIG slice these calls answer NotSupported.
            return {}
        nvml = self._nvml
        if nvml is None:
            nvml = _pynvml_or_warn(stacklevel=4)
            if nvml is None:
                return {}
        self._errors = _nvml_errors(nvml)
        clock_sm = getattr(nvml, "NVML_CLOCK_SM", _NVML_CLOCK_SM)
        sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", _NVML_TEMPERATURE_GPU)

        def bind(name: str, *args: Any) -> list[Callable[[], Any]]:
            function = getattr(nvml, name, None)
            if function is None:
                return []
            return [lambda: function(handle, *args)]

        return {
            "utilization": bind("nvmlDeviceGetUtilizationRates"),
            "memory": bind("nvmlDeviceGetMemoryInfo"),
            "sm_clock": bind("nvmlDeviceGetClockInfo", clock_sm),
            "power": bind("nvmlDeviceGetPowerUsage"),
            # The old call works with every driver; the V form is its replacement once the old
            # name leaves the binding (announced for CUDA 14).
            "temperature": bind("nvmlDeviceGetTemperature", sensor) + bind("nvmlDeviceGetTemperatureV", sensor),
            # EventReasons is the r535+ name; ThrottleReasons is the same call on older drivers.
            "clock_reasons": bind("nvmlDeviceGetCurrentClocksEventReasons")
            + bind("nvmlDeviceGetCurrentClocksThrottleReasons"),
        }

    def _read(self, metric: str) -> Any:
        candidates = self._probes.get(metric)
        if not candidates:
            return None
        errors = self._errors
        while candidates:
            try:
                return candidates[0]()
            except errors.missing:
                candidates.pop(0)
            except errors.not_supported:
                candidates.clear()
            except errors.any:
                return None
        self._disabled.append(metric)
        return None

    def _open_statm(self) -> None:
        self._close_statm()
        if not sys.platform.startswith("linux"):
            return
        try:
            # Kept open and re-read with pread: one syscall per sample, no Python file object.
            self._statm_fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            return
        self._page_mib = os.sysconf("SC_PAGE_SIZE") / _MIB

    def _close_statm(self) -> None:
        if self._statm_fd is not None:
            os.close(self._statm_fd)
            self._statm_fd = None

    def _rss_mib(self) -> float | None:
        if self._statm_fd is None:
            return None
        try:
            # statm: size resident shared text lib data dt, in pages.
            return int(os.pread(self._statm_fd, 128, 0).split()[1]) * self._page_mib
        except (OSError, ValueError, IndexError):
            return None

    def _sample(self, *, mark: bool = False) -> None:
        # The lock serialises the thread with start()/mark()/stop() sampling in the caller's thread.
        with self._lock:
            utilization = self._read("utilization")
            memory = self._read("memory")
            power_mw = self._read("power")
            # In summary's column order, _UTIL to _RSS.
            self._rows.append(
                (
                    None if utilization is None else utilization.gpu,
                    None if utilization is None else utilization.memory,
                    None if memory is None else memory.used / _MIB,
                    self._read("sm_clock"),
                    None if power_mw is None else power_mw / 1000.0,
                    self._read("temperature"),
                    self._read("clock_reasons"),
                    self._rss_mib(),
                )
            )
            if mark:
                self._marks.append(len(self._rows) - 1)

    def _run(self, stop_event: threading.Event) -> None:
        # Fixed-rate schedule, so a slow NVML call does not stretch every later period.
        deadline = time.monotonic() + self.period_s
        try:
            while not stop_event.wait(max(0.0, deadline - time.monotonic())):
                self._sample()
                deadline += self.period_s
                now = time.monotonic()
                if deadline < now:
                    # After a stall, skip the missed ticks rather than sample in a burst.
                    deadline = now + self.period_s
        except Exception as exc:
            # Warning from this thread would become an unhandled-thread-exception error under
            # filterwarnings=error; stop() reports it from the caller's thread instead.
            self._thread_error = exc
