"""GPU (NVML) and process-memory telemetry, sampled in the background during timed benchmark rounds.

torch and pynvml (nvidia-ml-py) are imported inside the functions that need them: the pytest plugin
imports this module, and every pytest run in the environment loads that plugin.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any

_MIB = 1024 * 1024

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

# Values of pynvml constants, for bindings or fakes that lack them; fixed by the NVML ABI.
_NVML_CLOCK_SM = 1
_NVML_TEMPERATURE_GPU = 0
_NVML_DEVICE_MIG_ENABLE = 1

_THREAD_NAME = "trainperf-sampler"


class TelemetryWarning(UserWarning):
    """GPU telemetry is partly or wholly unavailable; the affected metrics are recorded as None."""


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str, *, stacklevel: int = 3) -> None:
    # One warning per cause per process: a suite opens the GPU once per benchmark, and the same
    # "no NVML" line repeated for every benchmark buries everything else in the summary.
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    # The default stacklevel points at the caller of the public function that called this.
    warnings.warn(message, TelemetryWarning, stacklevel=stacklevel)


@dataclass(frozen=True)
class GpuIdentity:
    """Which physical GPU the telemetry describes, as NVML names it."""

    index: int
    name: str
    uuid: str
    driver_version: str | None
    cuda_driver_version: str | None
    mig: bool


@dataclass(frozen=True)
class _NvmlErrors:
    """Exception classes of one NVML binding; an empty tuple where the binding lacks the class."""

    any: tuple[type[BaseException], ...]
    # The function is not there to call: fall back to an older or newer spelling.
    missing: tuple[type[BaseException], ...]
    not_supported: tuple[type[BaseException], ...]


def _nvml_errors(nvml: ModuleType) -> _NvmlErrors:
    def cls(name: str) -> tuple[type[BaseException], ...]:
        found = getattr(nvml, name, None)
        return (found,) if isinstance(found, type) and issubclass(found, BaseException) else ()

    # nvidia-ml-py >= 12.535 wraps the unversioned process queries so that a driver without the
    # _v3 symbol raises NVMLLibraryMismatchError, which is not an NVMLError subclass.
    mismatch = cls("NVMLLibraryMismatchError")
    return _NvmlErrors(
        any=cls("NVMLError") + mismatch,
        missing=cls("NVMLError_FunctionNotFound") + cls("NVMLError_Deprecated") + mismatch,
        not_supported=cls("NVMLError_NotSupported"),
    )


_NO_ERRORS = _NvmlErrors(any=(), missing=(), not_supported=())


def _import_pynvml() -> ModuleType:
    import pynvml

    return pynvml


def _pynvml_or_warn(stacklevel: int) -> ModuleType | None:
    """The pynvml module, or None after one TelemetryWarning when it cannot be imported."""
    try:
        return _import_pynvml()
    except ImportError as exc:
        _warn_once(
            "nvml-unavailable",
            f"trainperf telemetry: pynvml is not importable ({exc}); GPU metrics are None",
            stacklevel=stacklevel + 1,
        )
        return None


def _text(value: str | bytes) -> str:
    # nvidia-ml-py >= 11.5 returns str; the third-party `pynvml` package (11.4, still in some NGC
    # images, where it shadows nvidia-ml-py's module of the same name) returns bytes.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _normalise_uuid(uuid: str) -> str:
    # NVML says "GPU-5e3a...", torch's str(props.uuid) says "5e3a..."; MIG slices are "MIG-...".
    uuid = uuid.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if uuid.startswith(prefix):
            return uuid[len(prefix) :]
    return uuid


def _torch_uuid(torch_device_index: int) -> str | None:
    """UUID of cuda:<index> as torch (the CUDA runtime) sees it, or None when torch cannot say."""
    try:
        import torch
    except ImportError:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        uuid = getattr(torch.cuda.get_device_properties(torch_device_index), "uuid", None)
    except (RuntimeError, AssertionError, ValueError):
        # An invalid index is an AssertionError in torch, a CUDA failure a RuntimeError.
        return None
    return None if uuid is None else str(uuid)


def _mig_enabled(nvml: ModuleType, handle: Any, errors: _NvmlErrors) -> bool:
    get_mode = getattr(nvml, "nvmlDeviceGetMigMode", None)
    if get_mode is None:
        return False
    try:
        current = get_mode(handle)[0]
    except errors.any:
        # GPUs without MIG support answer NotSupported.
        return False
    return current == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", _NVML_DEVICE_MIG_ENABLE)


def _mig_handles(nvml: ModuleType, handle: Any, errors: _NvmlErrors) -> list[Any]:
    get_count = getattr(nvml, "nvmlDeviceGetMaxMigDeviceCount", None)
    get_handle = getattr(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", None)
    if get_count is None or get_handle is None:
        return []
    handles = []
    for slot in range(get_count(handle)):
        try:
            handles.append(get_handle(handle, slot))
        except errors.any:
            # Slots without a configured instance answer NotFound.
            continue
    return handles


def _cuda_driver_version(nvml: ModuleType, errors: _NvmlErrors) -> str | None:
    for name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        get_version = getattr(nvml, name, None)
        if get_version is None:
            continue
        try:
            version = int(get_version())
        except errors.any:
            continue
        # NVML encodes 12.4 as 12040.
        return f"{version // 1000}.{version % 1000 // 10}"
    return None


def _identity(nvml: ModuleType, index: int, handle: Any, errors: _NvmlErrors, *, mig: bool) -> GpuIdentity:
    try:
        driver: str | None = _text(nvml.nvmlSystemGetDriverVersion())
    except errors.any:
        driver = None
    return GpuIdentity(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        driver_version=driver,
        cuda_driver_version=_cuda_driver_version(nvml, errors),
        mig=mig,
    )


def _index_fallback_is_safe(nvml: ModuleType, count: int) -> str | None:
    """Why torch's index cannot stand for the NVML index, or None when it can."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return f"CUDA_VISIBLE_DEVICES={visible!r} renumbers the devices torch sees"
    if count == 1 or os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return None
    # NVML numbers by PCI bus; CUDA's default FASTEST_FIRST order agrees with it only when the
    # GPUs are identical (ties are broken by bus id in practice).
    names = {_text(nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)}
    if len(names) == 1:
        return None
    return "the GPUs differ and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so CUDA and NVML number them differently"


def _find_gpu(
    nvml: ModuleType, torch_device_index: int, torch_uuid: str | None, errors: _NvmlErrors
) -> tuple[Any, GpuIdentity] | None:
    count = int(nvml.nvmlDeviceGetCount())
    if torch_uuid is None:
        torch_uuid = _torch_uuid(torch_device_index)
    if torch_uuid:
        wanted = _normalise_uuid(torch_uuid)
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        for index, handle in enumerate(handles):
            if _normalise_uuid(_text(nvml.nvmlDeviceGetUUID(handle))) == wanted:
                return handle, _identity(nvml, index, handle, errors, mig=_mig_enabled(nvml, handle, errors))
        # With MIG on, CUDA enumerates slices, not GPUs, and torch reports the slice's UUID.
        for index, handle in enumerate(handles):
            if not _mig_enabled(nvml, handle, errors):
                continue
            for mig_handle in _mig_handles(nvml, handle, errors):
                if _normalise_uuid(_text(nvml.nvmlDeviceGetUUID(mig_handle))) == wanted:
                    return mig_handle, _identity(nvml, index, mig_handle, errors, mig=True)
        _warn_once(
            "gpu-not-found",
            f"trainperf telemetry: no NVML device has torch's UUID {torch_uuid!r} for "
            f"cuda:{torch_device_index}; GPU metrics are recorded as None",
            stacklevel=4,
        )
        return None
    reason = _index_fallback_is_safe(nvml, count)
    if reason is None and 0 <= torch_device_index < count:
        handle = nvml.nvmlDeviceGetHandleByIndex(torch_device_index)
        return handle, _identity(nvml, torch_device_index, handle, errors, mig=_mig_enabled(nvml, handle, errors))
    if reason is None:
        reason = f"NVML sees only {count} device(s)"
    _warn_once(
        "gpu-not-found",
        f"trainperf telemetry: torch gives no UUID for cuda:{torch_device_index} and {reason}"
        "; GPU metrics are recorded as None",
        stacklevel=4,
    )
    return None


def open_gpu(
    torch_device_index: int = 0,
    *,
    nvml: ModuleType | None = None,
    torch_uuid: str | None = None,
) -> tuple[Any, GpuIdentity] | None:
    """NVML handle and identity of the GPU that torch calls cuda:<torch_device_index>.

    The GPU is matched by UUID, because CUDA_VISIBLE_DEVICES (and CUDA's default device order)
    make torch's index differ from NVML's. The index is used only when no UUID is available and
    nothing can have renumbered the devices. NVML is initialised and left initialised: the
    handle is only valid while it is, and the caller samples with it until the process ends.

    Args:
        torch_device_index: the torch CUDA device index.
        nvml: a module with pynvml's interface; pynvml is imported when None.
        torch_uuid: the device UUID, with or without a "GPU-"/"MIG-" prefix; read from
            torch.cuda.get_device_properties when None.

    Returns:
        (handle, identity), or None after one TelemetryWarning per cause and process when NVML,
        its driver or the device is unavailable. Never raises for an NVML or driver problem.
    """
    if nvml is None:
        nvml = _pynvml_or_warn(stacklevel=3)
        if nvml is None:
            return None
    errors = _nvml_errors(nvml)
    try:
        nvml.nvmlInit()
    except errors.any as exc:
        # LibraryNotFound (no driver installed), DriverNotLoaded, NoPermission, ...
        _warn_once(
            "nvml-unavailable",
            f"trainperf telemetry: NVML is unavailable ({type(exc).__name__}: {exc}); GPU metrics are recorded as None",
        )
        return None
    try:
        found = _find_gpu(nvml, torch_device_index, torch_uuid, errors)
    except errors.any as exc:
        _warn_once(
            "nvml-error",
            f"trainperf telemetry: NVML failed while looking for cuda:{torch_device_index} "
            f"({type(exc).__name__}: {exc}); GPU metrics are recorded as None",
        )
        return None
    if found is not None and found[1].mig:
        _warn_once(
            "mig",
            f"trainperf telemetry: GPU {found[1].index} ({found[1].name}) is in MIG mode; NVML does not "
            "report utilisation, clocks, power or throttling per MIG slice, so GPU metrics are None",
        )
    return found


def _compute_pids(nvml: ModuleType, handle: Any, errors: _NvmlErrors) -> list[int] | None:
    # The unversioned name calls the _v3 symbol, which older drivers lack; _v2 covers those.
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2"):
        get_processes = getattr(nvml, name, None)
        if get_processes is None:
            continue
        try:
            processes = get_processes(handle)
        except errors.missing:
            continue
        except errors.any:
            return None
        # A process with several contexts is listed once per context; count it once.
        return sorted({int(process.pid) for process in processes})
    return None


def _call_or_none(nvml: ModuleType, name: str, errors: _NvmlErrors, *args: Any) -> Any:
    function = getattr(nvml, name, None)
    if function is None:
        return None
    try:
        return function(*args)
    except errors.any:
        return None


def gpu_busy_report(handle: Any, *, nvml: ModuleType | None = None) -> dict[str, Any]:
    """What else is using the GPU, for the pre-flight idle check.

    NVML reports host PIDs. Inside a container with its own PID namespace os.getpid() differs
    from the host PID, so this process may appear among other_processes there.

    Args:
        handle: an NVML device handle from open_gpu.
        nvml: a module with pynvml's interface; pynvml is imported when None.

    Returns:
        {"other_processes": sorted PIDs of compute processes other than this one,
        "gpu_util_pct": int, "mem_used_mib": float}; each value is None when NVML cannot tell.
    """
    report: dict[str, Any] = {"other_processes": None, "gpu_util_pct": None, "mem_used_mib": None}
    if nvml is None:
        try:
            nvml = _import_pynvml()
        except ImportError:
            return report
    errors = _nvml_errors(nvml)
    pids = _compute_pids(nvml, handle, errors)
    if pids is not None:
        own_pid = os.getpid()
        report["other_processes"] = [pid for pid in pids if pid != own_pid]
    utilization = _call_or_none(nvml, "nvmlDeviceGetUtilizationRates", errors, handle)
    if utilization is not None:
        report["gpu_util_pct"] = int(utilization.gpu)
    memory = _call_or_none(nvml, "nvmlDeviceGetMemoryInfo", errors, handle)
    if memory is not None:
        report["mem_used_mib"] = round(memory.used / _MIB, 1)
    return report


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
                # Clocks are whole MHz; everything else is noisier than a tenth.
                value = round(value) if item.name == "sm_clock_mhz" else round(value, 1)
            info[item.name] = value
        return info


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _maximum(values: list[float]) -> float | None:
    return float(max(values)) if values else None


def _throttle_flag(reasons: list[int | None]) -> bool | None:
    known = [bits for bits in reasons if bits is not None]
    if not known:
        return None
    return any(bits & _THROTTLE_MASK for bits in known)


# Column order of a sample row.
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
        sm_clock_mhz=_median(known(_SM_CLOCK)),
        power_w=_median(known(_POWER)),
        temperature_c=_maximum(known(_TEMP)),
        throttled=_throttle_flag(list(columns[_REASONS])),
        throttle_reasons=[name for bit, name in _THROTTLE_BITS if reasons_seen & bit],
        rss_peak_mib=_maximum(known(_RSS)),
        throttled_rounds=throttled_rounds,
    )


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
