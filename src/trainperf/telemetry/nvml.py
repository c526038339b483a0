"""NVML discovery: finding and opening the GPU torch uses, its identity, and what else is using it.

Owns the once-per-process TelemetryWarning that the sampler shares. pynvml (nvidia-ml-py) and torch
are imported inside the functions that need them: the pytest plugin imports this package, and every
pytest run in the environment loads that plugin.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

_MIB = 1024 * 1024

# Values of pynvml constants, for bindings or fakes that lack them; fixed by the NVML ABI.
_NVML_CLOCK_SM = 1
_NVML_TEMPERATURE_GPU = 0
_NVML_DEVICE_MIG_ENABLE = 1


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
    """What NVML says the device is. A call that fails leaves its field unknown, not the whole GPU unsampled:
    the metrics are separate calls that may well work."""

    def text(name: str, *args: Any) -> str | None:
        value = _call_or_none(nvml, name, errors, *args)
        return None if value is None else _text(value)

    return GpuIdentity(
        index=index,
        name=text("nvmlDeviceGetName", handle) or "unknown GPU",
        uuid=text("nvmlDeviceGetUUID", handle) or "",
        driver_version=text("nvmlSystemGetDriverVersion"),
        cuda_driver_version=_cuda_driver_version(nvml, errors),
        mig=mig,
    )


def _uuid_or_none(nvml: ModuleType, handle: Any, errors: _NvmlErrors) -> str | None:
    """A device's normalised UUID; None when NVML cannot tell (that device is then no match, the others are
    still searched)."""
    value = _call_or_none(nvml, "nvmlDeviceGetUUID", errors, handle)
    return None if value is None else _normalise_uuid(_text(value))


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


def _match_uuid(nvml: ModuleType, count: int, torch_uuid: str, errors: _NvmlErrors) -> tuple[Any, GpuIdentity] | None:
    """The GPU, or MIG slice, whose NVML UUID is torch_uuid; None when no device has it."""
    wanted = _normalise_uuid(torch_uuid)
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    for index, handle in enumerate(handles):
        if _uuid_or_none(nvml, handle, errors) == wanted:
            return handle, _identity(nvml, index, handle, errors, mig=_mig_enabled(nvml, handle, errors))
    # With MIG on, CUDA enumerates slices, not GPUs, and torch reports the slice's UUID.
    for index, handle in enumerate(handles):
        if not _mig_enabled(nvml, handle, errors):
            continue
        for mig_handle in _mig_handles(nvml, handle, errors):
            if _uuid_or_none(nvml, mig_handle, errors) == wanted:
                return mig_handle, _identity(nvml, index, mig_handle, errors, mig=True)
    return None


def _find_gpu(
    nvml: ModuleType, torch_device_index: int, torch_uuid: str | None, errors: _NvmlErrors
) -> tuple[Any, GpuIdentity] | None:
    count = int(nvml.nvmlDeviceGetCount())
    if torch_uuid is None:
        torch_uuid = _torch_uuid(torch_device_index)
    if torch_uuid:
        found = _match_uuid(nvml, count, torch_uuid, errors)
        if found is not None:
            return found
        # Warned here, not in _match_uuid, so that stacklevel=4 still points at open_gpu's caller.
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
