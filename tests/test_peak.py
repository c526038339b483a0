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
