"""The measured matmul peak: a plain rate of 2 n^3 FLOPs per multiply, without touching the global TF32 switch."""

from __future__ import annotations

import pytest
import torch

from trainperf.measurement import peak


def test_the_measured_peak_is_matmul_flops_per_second(monkeypatch):
    calls = []

    def counted_mm(a, b):
        calls.append(a.shape)
        return a

    monkeypatch.setattr(torch, "mm", counted_mm)
    times = iter(range(10_000))
    monkeypatch.setattr(peak.time, "perf_counter", lambda: float(next(times)))  # every window lasts 1 s
    result = peak.measure("cpu", "fp32", n=64, windows=3, window_s=4.0)
    # calibration: 1 call in 1 s fills a quarter of the 4 s window, so a window is 4 calls; each takes 1 s here
    assert result.windows == 3 and calls[-1] == (64, 64) and len(calls) == 1 + 3 * 4
    assert result.tflops == pytest.approx(4 * 2 * 64**3 / 1e12, rel=1e-3)


def test_a_real_cpu_matmul_rate_is_positive_and_the_tf32_switch_is_restored():
    before = torch.backends.cuda.matmul.allow_tf32
    result = peak.measure("cpu", "tf32", n=128, windows=2, window_s=0.05)
    assert result.tflops > 0 and result.device == "cpu" and result.dtype == "tf32"
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_an_unknown_dtype_names_the_choices():
    with pytest.raises(ValueError, match="expected one of bf16, fp16, tf32, fp32"):
        peak.measure("cpu", "int8")


def test_trainperf_peak_sets_the_measured_rate_beside_the_datasheet(monkeypatch, capsys):
    from trainperf import cli
    from trainperf.machine import environment

    monkeypatch.setattr(environment, "environment_info", lambda: {"gpu_name": "NVIDIA H200"})
    monkeypatch.setattr(peak, "measure", lambda device, dtype, n: peak.Peak(device, dtype, n, 742.0, 5))
    assert cli.main(["peak", "--device", "cuda:0", "--dtype", "bf16,tf32", "--n", "64"]) in (0, 2)
    out, err = capsys.readouterr()
    if not torch.cuda.is_available():  # the CLI refuses a device the machine lacks; the table itself:
        assert "--device cuda:0: CUDA is not available" in err
        out = "\n".join(peak.table("cuda:0", ["bf16", "tf32"], 64))
    lines = out.splitlines()
    assert lines[0] == "cuda:0: NVIDIA H200; 64x64 matmuls, best window"
    assert lines[2].split() == ["bf16", "742.0", "989", "75%"]
    assert lines[3].split() == ["tf32", "742.0", "495", "150%"]


def test_trainperf_peak_on_the_cpu_and_bad_input(capsys):
    from trainperf import cli

    assert cli.main(["peak", "--device", "cpu", "--dtype", "fp32", "--n", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cpu: no datasheet peak") and lines[2].split()[0] == "fp32"
    assert float(lines[2].split()[1]) >= 0 and lines[2].split()[2:] == ["-", "-"]
    assert cli.main(["peak", "--device", "cpu", "--dtype", "int8"]) == 2
    assert "--dtype int8: expected some of bf16,fp16,tf32,fp32" in capsys.readouterr().err
