"""Tests for trainperf.telemetry: a fake NVML for the GPU paths, the real pynvml for the driverless one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Any

import pytest

from trainperf.telemetry import (
    GpuIdentity,
    Sampler,
    TelemetrySummary,
    TelemetryWarning,
    gpu_busy_report,
    open_gpu,
)
from trainperf.telemetry import nvml as telemetry_nvml

MIB = 1024 * 1024
# Long enough that the thread never ticks: samples then come only from start(), mark() and stop(),
# which makes the aggregation deterministic.
NO_TICKS = 3600.0

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-1111-2222-3333-444444444444"
UUID_C = "GPU-cccccccc-1111-2222-3333-444444444444"
UUID_MIG = "MIG-dddddddd-1111-2222-3333-444444444444"


# -- a fake NVML with pynvml's interface ----------------------------------------------------------


class NVMLError(Exception):
    def __init__(self, value: int = 999) -> None:
        super().__init__(value)
        self.value = value


class NVMLError_NotSupported(NVMLError):  # pynvml's class names
    def __init__(self) -> None:
        super().__init__(3)


class NVMLError_NotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(6)


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(12)


class NVMLError_FunctionNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(13)


class NVMLLibraryMismatchError(Exception):
    """pynvml raises this, not an NVMLError, when the driver lacks a versioned symbol."""


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H200"
    util: int = 50
    mem_util: int = 20
    mem_used_mib: float = 1024.0
    sm_clock: int = 1980
    power_mw: int = 300_000
    temperature: int = 60
    reasons: int = 0
    mig: bool = False
    mig_children: list[FakeGpu] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    is_mig_slice: bool = False


class FakeNvml:
    """pynvml's functions over a list of FakeGpu; handles are the FakeGpu objects.

    `absent` hides functions (as an older binding would), `fail` makes one raise an error class.
    """

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLLibraryMismatchError = NVMLLibraryMismatchError
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, gpus: list[FakeGpu], *, strings_as_bytes: bool = False) -> None:
        self.gpus = gpus
        self.strings_as_bytes = strings_as_bytes
        self.absent: set[str] = set()
        self.fail: dict[str, type[BaseException]] = {}
        self.calls: Counter[str] = Counter()

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("nvml"):
            return object.__getattribute__(self, name)
        if name in object.__getattribute__(self, "absent"):
            raise AttributeError(name)
        method = object.__getattribute__(self, name)
        calls = object.__getattribute__(self, "calls")
        fail = object.__getattribute__(self, "fail")

        # Failures are looked up per call, as the code under test may hold on to the function.
        def call(*args: Any) -> Any:
            calls[name] += 1
            error = fail.get(name)
            if error is not None:
                raise error()
            return method(*args)

        return call

    def _str(self, value: str) -> str | bytes:
        # The third-party `pynvml` 11.4 package returns bytes; nvidia-ml-py returns str.
        return value.encode() if self.strings_as_bytes else value

    @staticmethod
    def _whole_gpu(handle: FakeGpu) -> FakeGpu:
        if handle.is_mig_slice:
            raise NVMLError_NotSupported()
        return handle

    def nvmlInit(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self._str("550.54.15")

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str | bytes:
        return self._str(handle.uuid)

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str | bytes:
        return self._str(handle.name)

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        return [int(handle.mig), int(handle.mig)]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeGpu:
        if index >= len(handle.mig_children):
            raise NVMLError_NotFound()
        return handle.mig_children[index]

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> SimpleNamespace:
        gpu = self._whole_gpu(handle)
        return SimpleNamespace(gpu=gpu.util, memory=gpu.mem_util)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> SimpleNamespace:
        used = int(handle.mem_used_mib * MIB)
        return SimpleNamespace(total=141 * 1024 * MIB, used=used, free=141 * 1024 * MIB - used)

    def nvmlDeviceGetClockInfo(self, handle: FakeGpu, clock_type: int) -> int:
        assert clock_type == self.NVML_CLOCK_SM
        return self._whole_gpu(handle).sm_clock

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        return self._whole_gpu(handle).power_mw

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._whole_gpu(handle).temperature

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeGpu) -> int:
        return self._whole_gpu(handle).reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeGpu) -> int:
        return self._whole_gpu(handle).reasons

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=MIB) for pid in handle.pids]

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: FakeGpu) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=MIB) for pid in handle.pids]


REASON_FUNCTIONS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
SAMPLED_FUNCTIONS = (
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTemperature",
    *REASON_FUNCTIONS,
)


@pytest.fixture(autouse=True)
def _fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # Warnings are once per process; each test starts as a fresh process would.
    monkeypatch.setattr(telemetry_nvml, "_warned", set())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


@pytest.fixture
def nvml() -> FakeNvml:
    return FakeNvml([FakeGpu(UUID_A), FakeGpu(UUID_B), FakeGpu(UUID_C)])


def sampler_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "trainperf-sampler"]


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    # Polling, not a fixed sleep: on a loaded CI machine the thread may tick late.
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the sampling thread did not tick in time"
        time.sleep(0.001)


def open_fake(nvml: FakeNvml, index: int = 0) -> tuple[Any, GpuIdentity]:
    gpu = open_gpu(nvml=nvml, torch_uuid=nvml.gpus[index].uuid)
    assert gpu is not None
    return gpu


# -- open_gpu ------------------------------------------------------------------------------------


@pytest.mark.parametrize("torch_uuid", ["CCCCCCCC-1111-2222-3333-444444444444", UUID_C])
def test_open_gpu_matches_uuid_under_reordered_cuda_visible_devices(
    nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch, torch_uuid: str
) -> None:
    # torch's cuda:0 is NVML's GPU 2 here; torch's str(uuid) has no "GPU-" prefix.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0,1")
    handle, identity = open_gpu(0, nvml=nvml, torch_uuid=torch_uuid) or (None, None)
    assert handle is nvml.gpus[2]
    assert identity == GpuIdentity(
        index=2,
        name="NVIDIA H200",
        uuid=UUID_C,
        driver_version="550.54.15",
        cuda_driver_version="12.4",
        mig=False,
    )


def test_open_gpu_reads_uuid_from_torch_when_not_given(nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    asked: list[int] = []
    monkeypatch.setattr(telemetry_nvml, "_torch_uuid", lambda index: asked.append(index) or UUID_B[4:])
    gpu = open_gpu(0, nvml=nvml)
    assert gpu is not None and gpu[1].index == 1
    assert asked == [0]


def test_open_gpu_decodes_bytes_from_old_bindings_and_falls_back_to_v1_cuda_version() -> None:
    nvml = FakeNvml([FakeGpu(UUID_A, name="Tesla V100")], strings_as_bytes=True)
    nvml.absent.add("nvmlSystemGetCudaDriverVersion_v2")
    _, identity = open_fake(nvml)
    assert (identity.uuid, identity.name, identity.driver_version) == (UUID_A, "Tesla V100", "550.54.15")
    assert identity.cuda_driver_version == "12.4"


def test_open_gpu_without_uuid_uses_the_index_only_when_nothing_renumbers(
    nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_nvml, "_torch_uuid", lambda index: None)
    gpu = open_gpu(1, nvml=nvml)
    assert gpu is not None and gpu[0] is nvml.gpus[1] and gpu[1].uuid == UUID_B

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0,1")
    with pytest.warns(TelemetryWarning, match="CUDA_VISIBLE_DEVICES='2,0,1'"):
        assert open_gpu(1, nvml=nvml) is None


def test_open_gpu_without_uuid_refuses_the_index_for_mixed_gpus_in_fastest_first_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nvml = FakeNvml([FakeGpu(UUID_A, name="NVIDIA H200"), FakeGpu(UUID_B, name="NVIDIA L4")])
    monkeypatch.setattr(telemetry_nvml, "_torch_uuid", lambda index: None)
    with pytest.warns(TelemetryWarning, match="CUDA_DEVICE_ORDER"):
        assert open_gpu(0, nvml=nvml) is None
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    gpu = open_gpu(1, nvml=nvml)
    assert gpu is not None and gpu[1].name == "NVIDIA L4"


def test_open_gpu_unknown_uuid_warns_once_and_returns_none(nvml: FakeNvml) -> None:
    with pytest.warns(TelemetryWarning, match="no NVML device has torch's UUID") as record:
        assert open_gpu(nvml=nvml, torch_uuid="GPU-00000000-0000-0000-0000-000000000000") is None
    assert len(record) == 1
    # Once per process: the second miss is silent (filterwarnings=error would raise otherwise).
    assert open_gpu(nvml=nvml, torch_uuid="GPU-00000000-0000-0000-0000-000000000000") is None


def test_open_gpu_nvml_init_failure_is_a_warning_not_an_exception(nvml: FakeNvml) -> None:
    nvml.fail["nvmlInit"] = NVMLError_LibraryNotFound
    with pytest.warns(TelemetryWarning, match="NVMLError_LibraryNotFound") as record:
        assert open_gpu(nvml=nvml, torch_uuid=UUID_A) is None
    assert len(record) == 1


def test_open_gpu_finds_a_mig_slice_by_its_uuid() -> None:
    mig_slice = FakeGpu(UUID_MIG, name="NVIDIA H200 MIG 1g.18gb", is_mig_slice=True)
    nvml = FakeNvml([FakeGpu(UUID_A), FakeGpu(UUID_B, mig=True, mig_children=[mig_slice])])
    with pytest.warns(TelemetryWarning, match="MIG") as record:
        gpu = open_gpu(nvml=nvml, torch_uuid=UUID_MIG[4:])
    assert len(record) == 1
    assert gpu is not None
    handle, identity = gpu
    assert handle is mig_slice
    assert (identity.index, identity.uuid, identity.mig) == (1, UUID_MIG, True)


def test_sampler_on_mig_records_no_gpu_metrics() -> None:
    mig_slice = FakeGpu(UUID_MIG, is_mig_slice=True)
    nvml = FakeNvml([FakeGpu(UUID_A, mig=True, mig_children=[mig_slice])])
    with pytest.warns(TelemetryWarning, match="MIG"):
        gpu = open_gpu(nvml=nvml, torch_uuid=UUID_MIG)
    nvml.calls.clear()
    with Sampler(gpu, period_s=NO_TICKS, nvml=nvml) as sampler:
        sampler.mark()
        sampler.mark()
    summary = sampler.summary
    assert summary is not None and summary.samples == 4
    gpu_fields = ("gpu_util_pct", "mem_util_pct", "gpu_mem_used_mib", "sm_clock_mhz", "power_w")
    assert all(getattr(summary, name) is None for name in gpu_fields)
    assert (summary.temperature_c, summary.throttled, summary.throttled_rounds) == (None, None, [None, None])
    assert not any(nvml.calls[name] for name in SAMPLED_FUNCTIONS)


# -- Sampler aggregation ----------------------------------------------------------------------------


def run_window(nvml: FakeNvml, gpu: tuple[Any, GpuIdentity], steps: list[dict[str, Any]]) -> TelemetrySummary:
    """One window: start() samples steps[0], mark() each middle step, stop() the last."""
    fake = gpu[0]
    sampler = Sampler(gpu, period_s=NO_TICKS, nvml=nvml)
    for position, values in enumerate(steps):
        for name, value in values.items():
            setattr(fake, name, value)
        if position == 0:
            sampler.start()
        elif position == len(steps) - 1:
            return sampler.stop()
        else:
            sampler.mark()
    raise AssertionError("steps needs at least two entries")


def test_summary_takes_medians_means_and_maxima(nvml: FakeNvml) -> None:
    gpu = open_fake(nvml)
    summary = run_window(
        nvml,
        gpu,
        [
            {"util": 10, "mem_util": 5, "mem_used_mib": 1000.0, "sm_clock": 1500, "power_mw": 100_000},
            {"util": 90, "mem_util": 40, "mem_used_mib": 9000.0, "sm_clock": 1980, "power_mw": 650_000},
            {"util": 50, "mem_util": 30, "mem_used_mib": 5000.0, "sm_clock": 1900, "power_mw": 600_000},
            {"util": 70, "mem_util": 35, "mem_used_mib": 3000.0, "sm_clock": 1950, "power_mw": 640_000},
        ],
    )
    assert summary.samples == 4
    assert summary.gpu_util_pct == 60.0
    assert summary.gpu_util_pct_mean == 55.0
    assert summary.mem_util_pct == 32.5
    assert summary.gpu_mem_used_mib == 9000.0
    assert summary.sm_clock_mhz == 1925.0
    assert summary.power_w == 620.0
    assert summary.temperature_c == 60.0
    assert (summary.throttled, summary.throttle_reasons) == (False, [])
    assert summary.rss_peak_mib is None or summary.rss_peak_mib > 0


def test_temperature_is_the_maximum(nvml: FakeNvml) -> None:
    summary = run_window(nvml, open_fake(nvml), [{"temperature": 40}, {"temperature": 83}, {"temperature": 70}])
    assert summary.temperature_c == 83.0


@pytest.mark.parametrize(
    ("reasons", "throttled", "names"),
    [
        (0x04, True, ["sw_power_cap"]),
        (0x08 | 0x40, True, ["hw_slowdown", "hw_thermal_slowdown"]),
        (0x20, True, ["sw_thermal_slowdown"]),
        (0x80, True, ["hw_power_brake_slowdown"]),
        (0x01 | 0x02, False, []),  # GPU idle and application clocks are not throttling
        (0x10 | 0x100, False, []),  # nor are sync boost and the display clock
    ],
)
def test_throttle_flags(nvml: FakeNvml, reasons: int, throttled: bool, names: list[str]) -> None:
    summary = run_window(nvml, open_fake(nvml), [{"reasons": 0}, {"reasons": reasons}, {"reasons": 0}])
    assert (summary.throttled, summary.throttle_reasons) == (throttled, names)


def test_throttle_reasons_fall_back_to_the_pre_r535_function(nvml: FakeNvml) -> None:
    # Drivers before r535 have no nvmlDeviceGetCurrentClocksEventReasons symbol.
    nvml.fail["nvmlDeviceGetCurrentClocksEventReasons"] = NVMLError_FunctionNotFound
    summary = run_window(nvml, open_fake(nvml), [{"reasons": 0}, {"reasons": 0x04}])
    assert summary.throttled is True
    assert nvml.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1


def test_no_throttle_reason_function_gives_none_and_one_warning(nvml: FakeNvml) -> None:
    nvml.absent.update(REASON_FUNCTIONS)
    with pytest.warns(TelemetryWarning, match="clock_reasons") as record:
        summary = run_window(nvml, open_fake(nvml), [{"reasons": 0x04}, {}, {}])
    assert len(record) == 1
    assert (summary.throttled, summary.throttle_reasons, summary.throttled_rounds) == (None, [], [None])
    assert summary.gpu_util_pct == 50.0


def test_mark_gives_one_throttle_flag_per_round(nvml: FakeNvml) -> None:
    summary = run_window(
        nvml,
        open_fake(nvml),
        [
            {"reasons": 0x80},  # start(), before the first round: in no round
            {"reasons": 0},  # mark() opens round 1; its sample is in no round either
            {"reasons": 0x40},  # mark() closes round 1 (throttled) and opens round 2
            {"reasons": 0x01},  # mark() closes round 2 (idle: not throttled) and opens round 3
            {"reasons": 0x04},  # stop() closes round 3 (power cap)
        ],
    )
    assert summary.throttled_rounds == [True, False, True]
    assert summary.throttled is True
    assert summary.throttle_reasons == ["sw_power_cap", "hw_thermal_slowdown", "hw_power_brake_slowdown"]


def test_mark_counts_thread_samples_inside_the_round(nvml: FakeNvml) -> None:
    gpu = open_fake(nvml)
    sampler = Sampler(gpu, period_s=0.005, nvml=nvml)
    sampler.start()
    sampler.mark()
    nvml.gpus[0].reasons = 0x04
    ticks = nvml.calls["nvmlDeviceGetCurrentClocksEventReasons"]
    wait_until(lambda: nvml.calls["nvmlDeviceGetCurrentClocksEventReasons"] >= ticks + 2)
    nvml.gpus[0].reasons = 0
    sampler.mark()
    summary = sampler.stop()
    # The boundary samples read 0; only the thread saw the power cap during round 1.
    assert summary.throttled_rounds == [True, False]


def test_not_supported_metric_is_none_for_the_window_and_the_rest_are_fine(nvml: FakeNvml) -> None:
    nvml.fail["nvmlDeviceGetPowerUsage"] = NVMLError_NotSupported
    gpu = open_fake(nvml)
    with pytest.warns(TelemetryWarning, match="power") as record:
        summary = run_window(nvml, gpu, [{}, {}, {}, {}])
    assert len(record) == 1
    assert summary.power_w is None
    assert (summary.gpu_util_pct, summary.sm_clock_mhz, summary.temperature_c) == (50.0, 1980.0, 60.0)
    assert summary.throttled is False
    # Disabled after the first NotSupported, for this window only; a new window asks again.
    assert nvml.calls["nvmlDeviceGetPowerUsage"] == 1
    run_window(nvml, gpu, [{}, {}])
    assert nvml.calls["nvmlDeviceGetPowerUsage"] == 2


def test_transient_nvml_error_costs_one_sample_and_the_thread_survives(nvml: FakeNvml) -> None:
    gpu = open_fake(nvml)
    nvml.fail["nvmlDeviceGetTemperature"] = NVMLError
    sampler = Sampler(gpu, period_s=0.005, nvml=nvml)
    sampler.start()
    wait_until(lambda: nvml.calls["nvmlDeviceGetTemperature"] >= 5)
    assert len(sampler_threads()) == 1
    del nvml.fail["nvmlDeviceGetTemperature"]
    nvml.gpus[0].temperature = 71
    summary = sampler.stop()  # no warning: a transient error disables nothing
    assert summary.samples >= 5
    assert summary.temperature_c == 71.0
    assert nvml.calls["nvmlDeviceGetTemperature"] == summary.samples


def test_stop_does_not_hang_on_a_stuck_nvml_call(nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Sampler, "_JOIN_TIMEOUT_MIN_S", 0.05)
    entered, release = threading.Event(), threading.Event()
    answer_power = FakeNvml.nvmlDeviceGetPowerUsage

    def hang_in_the_sampler_thread(self: FakeNvml, handle: FakeGpu) -> int:
        if threading.current_thread().name == "trainperf-sampler":
            entered.set()
            release.wait(10)
        return answer_power(self, handle)

    monkeypatch.setattr(FakeNvml, "nvmlDeviceGetPowerUsage", hang_in_the_sampler_thread)
    sampler = Sampler(open_fake(nvml), period_s=0.001, nvml=nvml)
    sampler.start()
    assert entered.wait(10)
    began = time.monotonic()
    with pytest.warns(TelemetryWarning, match="did not stop") as record:
        summary = sampler.stop()
    assert time.monotonic() - began < 5
    assert len(record) == 1
    assert summary.samples >= 1 and summary.power_w == 300.0
    release.set()
    wait_until(lambda: sampler_threads() == [])


# -- gpu_busy_report -------------------------------------------------------------------------------


def test_gpu_busy_report_lists_other_processes(nvml: FakeNvml) -> None:
    nvml.gpus[1].pids = [os.getpid(), 4242, 777, 4242]
    nvml.gpus[1].util = 35
    nvml.gpus[1].mem_used_mib = 2048.25
    report = gpu_busy_report(nvml.gpus[1], nvml=nvml)
    assert report == {"other_processes": [777, 4242], "gpu_util_pct": 35, "mem_used_mib": 2048.2}


def test_gpu_busy_report_falls_back_to_v2_process_query(nvml: FakeNvml) -> None:
    # A driver without the _v3 symbol makes nvidia-ml-py raise NVMLLibraryMismatchError.
    nvml.fail["nvmlDeviceGetComputeRunningProcesses"] = NVMLLibraryMismatchError
    nvml.gpus[0].pids = [555]
    assert gpu_busy_report(nvml.gpus[0], nvml=nvml)["other_processes"] == [555]


def test_gpu_busy_report_missing_functions_give_none(nvml: FakeNvml) -> None:
    nvml.absent.update(
        {
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetComputeRunningProcesses_v2",
            "nvmlDeviceGetUtilizationRates",
        }
    )
    nvml.fail["nvmlDeviceGetMemoryInfo"] = NVMLError_NotSupported
    report = gpu_busy_report(nvml.gpus[0], nvml=nvml)
    assert report == {"other_processes": None, "gpu_util_pct": None, "mem_used_mib": None}


# -- the real pynvml, and process memory -----------------------------------------------------------


def test_open_gpu_with_the_real_pynvml() -> None:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        has_driver = False
    else:
        has_driver = True
    if has_driver:
        gpu = open_gpu()
        assert gpu is not None and gpu[1].uuid.startswith(("GPU-", "MIG-"))
        return
    with pytest.warns(TelemetryWarning, match="NVML is unavailable") as record:
        assert open_gpu() is None
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_gpu() is None  # once per process


def read_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="rss comes from /proc/self/statm")
def test_cpu_only_sampler_reports_peak_rss_and_no_gpu_fields() -> None:
    before = read_rss_mib()
    sampler = Sampler(gpu=None, period_s=0.01)
    sampler.start()
    # b"x" * n writes every page, so they are resident (a calloc'd bytearray may not be).
    ballast = b"x" * (64 * MIB)
    summary = sampler.stop()
    del ballast
    assert summary.rss_peak_mib is not None and summary.rss_peak_mib >= before + 60
    gpu_fields = ("gpu_util_pct", "gpu_util_pct_mean", "mem_util_pct", "gpu_mem_used_mib")
    assert all(getattr(summary, name) is None for name in gpu_fields)
    assert (summary.sm_clock_mhz, summary.power_w, summary.temperature_c) == (None, None, None)
    assert (summary.throttled, summary.throttle_reasons) == (None, [])


# -- Sampler lifecycle -----------------------------------------------------------------------------


def test_sampler_windows_are_independent_and_the_thread_goes_away(nvml: FakeNvml) -> None:
    sampler = Sampler(open_fake(nvml), period_s=NO_TICKS, nvml=nvml)
    sampler.start()
    threads = sampler_threads()
    assert len(threads) == 1 and threads[0].daemon
    sampler.mark()
    sampler.mark()
    first = sampler.stop()
    assert sampler_threads() == []
    assert (first.samples, first.throttled_rounds) == (4, [False, False])

    nvml.gpus[0].util = 99
    sampler.start()
    assert len(sampler_threads()) == 1
    second = sampler.stop()
    assert sampler_threads() == []
    assert (second.samples, second.throttled_rounds, second.gpu_util_pct) == (2, [], 99.0)


def test_sampler_as_context_manager_sets_summary() -> None:
    with Sampler(period_s=0.01) as sampler:
        assert sampler.summary is None
        assert len(sampler_threads()) == 1
    assert sampler_threads() == []
    assert sampler.summary is not None and sampler.summary.samples >= 2


def test_sampler_misuse_raises() -> None:
    with pytest.raises(ValueError, match="period_s"):
        Sampler(period_s=0)
    sampler = Sampler(period_s=NO_TICKS)
    with pytest.raises(RuntimeError, match="without start"):
        sampler.stop()
    with pytest.raises(RuntimeError, match="outside"):
        sampler.mark()
    sampler.start()
    with pytest.raises(RuntimeError, match="already sampling"):
        sampler.start()
    sampler.stop()


def test_as_extra_info_is_flat_rounded_and_json_safe() -> None:
    summary = TelemetrySummary(
        samples=3,
        gpu_util_pct=97.25,
        gpu_util_pct_mean=96.6666,
        mem_util_pct=None,
        gpu_mem_used_mib=40960.123,
        sm_clock_mhz=1973.0,  # whole MHz: summarize rounds clocks
        power_w=612.345,
        temperature_c=71.0,
        throttled=True,
        throttle_reasons=["sw_power_cap"],
        rss_peak_mib=2048.987,
        throttled_rounds=[False, True, None],
    )
    info = summary.as_extra_info()
    assert list(info) == [item.name for item in fields(TelemetrySummary)]
    assert info["gpu_util_pct_mean"] == 96.7
    assert info["gpu_mem_used_mib"] == 40960.1
    assert info["sm_clock_mhz"] == 1973
    assert info["power_w"] == 612.3
    assert info["rss_peak_mib"] == 2049.0
    assert json.loads(json.dumps(info)) == info
    info["throttle_reasons"].append("mutated")
    assert summary.throttle_reasons == ["sw_power_cap"]


def test_import_loads_neither_torch_nor_pynvml() -> None:
    code = "import sys, trainperf.telemetry; print(sorted({'torch', 'pynvml'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- one failing NVML call costs its own field, not the GPU ------------------------------------------


def test_a_failing_name_or_driver_call_leaves_the_gpu_sampled(nvml: FakeNvml) -> None:
    nvml.fail["nvmlDeviceGetName"] = NVMLError
    nvml.fail["nvmlSystemGetDriverVersion"] = NVMLError
    handle, identity = open_fake(nvml, 1)
    assert handle is nvml.gpus[1] and identity.index == 1 and identity.uuid == UUID_B
    assert identity.name == "unknown GPU" and identity.driver_version is None
    summary = run_window(nvml, (handle, identity), [{}, {}])
    assert (summary.gpu_util_pct, summary.sm_clock_mhz, summary.power_w) == (50.0, 1980.0, 300.0)


class OneBadDevice(FakeNvml):
    """NVML that cannot read the UUID of its first device (a GPU fallen off the bus answers GPU_IS_LOST)."""

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str | bytes:
        if handle is self.gpus[0]:
            raise NVMLError()
        return super().nvmlDeviceGetUUID(handle)


def test_a_device_nvml_cannot_read_does_not_hide_the_one_torch_uses() -> None:
    nvml = OneBadDevice([FakeGpu(UUID_A), FakeGpu(UUID_B)])
    found = open_gpu(0, nvml=nvml, torch_uuid=UUID_B)
    assert found is not None and found[0] is nvml.gpus[1] and found[1].uuid == UUID_B
