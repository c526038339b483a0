"""Models, environment, backend flags and the compile-time probe, piece by piece (the results table is in
test_report.py)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from trainperf.machine import environment
from trainperf.measurement.cases import Case
from trainperf.measurement.compile_time import CompileProbeError, cold_and_warm
from trainperf.measurement.models import build_model
from trainperf.settings import OPTIONS


def test_resnet18_cifar_has_the_cifar_stem():
    model = build_model("resnet18_cifar")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.fc.out_features == 10
    stock = build_model("resnet18")
    assert stock.conv1.kernel_size == (7, 7) and isinstance(stock.maxpool, nn.MaxPool2d)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_torchvision_names_and_factories(tmp_path, monkeypatch):
    assert build_model("mobilenet_v3_small").classifier[-1].out_features == 10
    (tmp_path / "teammodels.py").write_text(
        "from torch import nn\n"
        "def plain():\n    return nn.Linear(4, 2)\n"
        "def sized(num_classes):\n    return nn.Linear(4, num_classes)\n"
        "def broken():\n    return 42\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    assert build_model("teammodels:plain").out_features == 2
    assert build_model("teammodels:sized").out_features == 10
    with pytest.raises(TypeError, match=r"returned int, expected a torch\.nn\.Module"):
        build_model("teammodels:broken")


def test_backend_flags_are_set_and_recorded():
    try:
        flags = environment.apply_backend_flags(tf32=False, cudnn_benchmark=False)
        assert flags["cudnn_benchmark"] is False and flags["matmul_tf32"] is False and flags["cudnn_tf32"] is False
        assert flags["float32_matmul_precision"] == "highest"
        # Inductor's conv templates read the legacy switch; it must not find the two APIs mixed.
        assert torch.backends.cudnn.allow_tf32 is False
        flags = environment.apply_backend_flags(tf32=True, cudnn_benchmark=True)
        assert torch.backends.cudnn.allow_tf32 is True
        assert flags == environment.backend_flags()
        assert flags["matmul_tf32"] and flags["cudnn_tf32"] and flags["cudnn_benchmark"]
    finally:
        environment.apply_backend_flags(tf32=True, cudnn_benchmark=True)


def test_environment_on_a_machine_without_gpu():
    info = environment.environment_info()
    assert info["torch"] == torch.__version__ and info["cpu_count"] >= 1 and info["cpu_model"]
    assert info["cuda_available"] is False and info["gpu_name"] is None and info["driver"] is None
    json.dumps(info)
    assert "CUDA is not available" in environment.device_unavailable_reason("cuda")
    assert environment.device_unavailable_reason("cpu") is None
    lines = environment.header_lines(info, environment.backend_flags())
    assert any(line.startswith("CUDA: not available") for line in lines)


def test_every_option_says_its_default_in_help():
    for option in OPTIONS:
        assert option.cli.startswith("--trainperf-") and option.ini.startswith("trainperf_")
        assert option.expected


def test_compile_probe_failure_carries_the_child_error():
    case = Case("cpu", "default", "fp32", "contiguous", "no_such_module_xyz:make", 4, "foreach")
    with pytest.raises(CompileProbeError, match="No module named 'no_such_module_xyz'"):
        cold_and_warm(case, warmup_steps=2, tf32=True, cudnn_benchmark=True, seed=0, timeout_s=120)


def test_compile_probe_result_survives_a_model_that_prints(tmp_path, monkeypatch):
    # The probe's numbers travel in a file: whatever the model, a library or the compiler prints is not parsed.
    (tmp_path / "chatty.py").write_text(
        "import atexit\n"
        "from torch import nn\n"
        "atexit.register(print, 'a library saying goodbye at exit')\n"
        "def make(num_classes=10):\n"
        "    print('building the model'); print('{not json')\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    case = Case("cpu", "eager", "fp32", "contiguous", "chatty:make", 4, "foreach")
    result = cold_and_warm(case, warmup_steps=2, tf32=True, cudnn_benchmark=True, seed=0, timeout_s=120)
    assert result.steady_step_s > 0 and result.process_cold_s > 0


def test_compile_probe_of_a_case_that_compiled_nothing_fails(monkeypatch):
    # With Dynamo disabled torch.compile is a no-op: a "compile time" would be a number about nothing.
    monkeypatch.setenv("TORCHDYNAMO_DISABLE", "1")
    case = Case("cpu", "default", "fp32", "contiguous", "resnet18", 4, "foreach")
    with pytest.raises(CompileProbeError, match="compiled no graph"):
        cold_and_warm(case, warmup_steps=2, tf32=True, cudnn_benchmark=True, seed=0, timeout_s=120)


def test_training_flops_and_peaks():
    from trainperf.measurement.mfu import math_mode, peak_flops, training_flops

    # forward 2*B*in*out; backward only the weight gradient (the input needs none): twice that in all
    assert training_flops(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)), 32) == 2 * (2 * 32 * 3072 * 10)
    assert training_flops(build_model("resnet18"), 2) / 2 == pytest.approx(0.217e9, rel=0.01)  # the 0.22
    assert training_flops(build_model("resnet18_cifar"), 2) / 2 == pytest.approx(3.33e9, rel=0.01)  # and 3.3
    assert math_mode("fp32", tf32=True) == "tf32" and math_mode("fp32", tf32=False) == "fp32"
    assert peak_flops("NVIDIA H200", "bf16", tf32=True) == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bf16", tf32=True) == 756e12
    assert peak_flops("NVIDIA L40S", "fp32", tf32=True) == 183e12
    assert peak_flops("NVIDIA L4", "fp32", tf32=False) == pytest.approx(30.3e12)
    assert peak_flops("Tesla V100-SXM2-16GB", "bf16", tf32=True) is None  # no bf16 tensor cores
    assert peak_flops("Some Future GPU", "bf16", tf32=True) is None and peak_flops(None, "fp32", tf32=True) is None


@pytest.mark.parametrize(
    ("name", "bf16_tflops"),
    [
        ("NVIDIA H200", 989),
        ("NVIDIA H200 NVL", 835),  # not the SXM part's peak
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA L40S", 362),
        ("NVIDIA L40", 181),  # not the L40S's, nor the L4's
        ("NVIDIA L4", 121),
        ("NVIDIA A10", 125),
        ("NVIDIA A10G", None),  # unlisted: no MFU rather than the A10's peak
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", None),  # a MIG slice has a fraction of the peak
    ],
)
def test_the_peak_table_matches_whole_device_names(name, bf16_tflops):
    from trainperf.measurement.mfu import peak_flops

    peak = peak_flops(name, "bf16", tf32=True)
    assert peak == (None if bf16_tflops is None else bf16_tflops * 1e12)


def test_a_small_models_throughput_is_not_rounded_to_zero():
    from trainperf.measurement.mfu import utilisation

    tiny = nn.Sequential(nn.Flatten(), nn.Linear(3072, 10))
    case = Case("cpu", "eager", "fp32", "contiguous", "tiny", 32, "foreach")
    out = utilisation(tiny, case, 7.0, tf32=True)  # 7 img/s of 122,880 FLOPs each: 8.6e-7 TFLOP/s
    assert out.train_flops_per_image == 2 * 2 * 3072 * 10
    assert out.achieved_tflops == pytest.approx(7.0 * 122_880 / 1e12, rel=1e-3) and out.achieved_tflops > 0
    assert out.mfu is None and out.peak_tflops is None  # a CPU has no peak


def test_busy_gpu_reasons():
    from trainperf.machine.preflight import busy_reasons

    assert busy_reasons({"other_processes": [], "gpu_util_pct": 0, "mem_used_mib": 500.0}) == []
    assert busy_reasons({"other_processes": None, "gpu_util_pct": None, "mem_used_mib": None}) == []
    assert busy_reasons({"other_processes": [4242, 77], "gpu_util_pct": 93}) == [
        "2 other process(es) compute on it (pid 4242, 77)",
        "it is already 93% busy",
    ]


def test_warnings_are_errors_in_the_projects_own_tests():
    # tests/conftest.py marks every test here; pytest perf/ keeps library warnings as warnings.
    with pytest.raises(UserWarning, match="a defect"):
        warnings.warn("a defect", UserWarning, stacklevel=1)


def test_environment_and_header_on_a_cuda_machine(monkeypatch):
    # The CUDA branch runs first thing on a GPU runner; exercised here with torch's device queries stubbed.
    from types import SimpleNamespace

    from trainperf import telemetry
    from trainperf.machine.key import machine_key

    props = SimpleNamespace(name="NVIDIA H200", major=9, minor=0, total_memory=143771 * 2**20)
    identity = SimpleNamespace(uuid="GPU-1234", driver_version="580.95", cuda_driver_version="13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(telemetry, "open_gpu", lambda index: (object(), identity))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    environment.environment_info.cache_clear()
    try:
        info = environment.environment_info()
    finally:
        environment.environment_info.cache_clear()
    assert info["cuda_available"] is True and info["gpu_count"] == 8
    assert info["gpu_name"] == "NVIDIA H200" and info["gpu_capability"] == "9.0" and info["gpu_memory_mib"] == 143771
    assert (info["gpu_uuid"], info["driver"], info["cuda_driver"]) == ("GPU-1234", "580.95", "13.0")
    json.dumps(info)  # recorded in machine_info as it is
    header = environment.header_lines(info, {"cudnn_benchmark": True})
    assert header[2].startswith("CUDA: yes, 8 x NVIDIA H200 (sm 9.0, 143771 MiB), driver 580.95, CUDA runtime 12.8")
    torch_mm = ".".join(torch.__version__.split(".")[:2])
    assert machine_key(info) == f"cuda-nvidia-h200-torch{torch_mm}-cuda12.8"


def test_fp16_steps_go_through_the_grad_scaler(monkeypatch):
    # fp16 runs on CUDA only; its step wiring (scale the loss, step and update through the scaler) is checked
    # here with a recording scaler and CPU autocast.
    from trainperf.measurement.training import build_trainer

    calls = []

    class RecordingScaler:
        def __init__(self, device):
            calls.append(("init", device))

        def scale(self, loss):
            calls.append("scale")
            return loss * 1.0

        def step(self, optimizer):
            calls.append("step")
            optimizer.step()

        def update(self):
            calls.append("update")

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    case = Case("cpu", "eager", "fp16", "contiguous", "tiny", 8, "foreach")
    trainer = build_trainer(case, nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)))
    trainer.batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))]
    weight = trainer.model[1].weight.detach().clone()
    trainer.run(2)
    assert calls == [("init", "cuda"), "scale", "step", "update", "scale", "step", "update"]
    assert not torch.equal(weight, trainer.model[1].weight)  # the scaler's step did step the optimizer


def test_compile_probe_keeps_autotuning_out_of_compile_time(tmp_path, monkeypatch):
    # A model whose first forward in a process is slow, as cuDNN's autotuning makes the first step of each
    # convolution shape: that cost is the eager pre-step's (autotune_s), not the compiled warm-up's.
    (tmp_path / "tuned_once.py").write_text(
        "import time\n"
        "from torch import nn\n"
        "TUNED = []\n"
        "class Net(nn.Sequential):\n"
        "    def forward(self, x):\n"
        "        if not TUNED:\n"
        "            time.sleep(0.5); TUNED.append(True)\n"
        "        return super().forward(x)\n"
        "def make(num_classes=10):\n"
        "    return Net(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from trainperf.measurement.compile_time import probe

    case = Case("cpu", "eager", "fp32", "contiguous", "tuned_once:make", 4, "foreach")
    times = probe(case, warmup_steps=2, tf32=True, cudnn_benchmark=True, seed=0)
    assert times.autotune_s >= 0.45
    assert times.compile_s < 0.2


def test_compile_probe_timeout_comes_from_the_callers_deadline(monkeypatch):
    from trainperf.measurement.compile_time import DEADLINE_ENV, PROBE_TIMEOUT_S, probe_timeout_s

    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    assert probe_timeout_s(now=1000.0) == PROBE_TIMEOUT_S
    monkeypatch.setenv(DEADLINE_ENV, "1300")
    assert probe_timeout_s(now=1000.0) == 300.0
    monkeypatch.setenv(DEADLINE_ENV, "999")
    with pytest.raises(CompileProbeError, match="no time left"):
        probe_timeout_s(now=1000.0)
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(CompileProbeError, match="expected a Unix time"):
        probe_timeout_s(now=1000.0)
