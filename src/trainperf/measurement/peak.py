"""The device's dense matrix-multiply peak, measured: what MFU can be taken against besides the datasheet.

A datasheet peak is a boost-clock figure that a power-capped or thermally limited part never reaches, and the
datasheet table knows only the GPUs listed in ``mfu.PEAK_FLOPS``. ``measure`` times square matmuls of one dtype
(``2 n^3`` FLOPs each) back to back, with one synchronize at the end of each timed window, after an untimed
warm-up that lets cuBLAS pick its kernels and the clocks settle, and reports the best window's rate: the most
this device did, not a typical run. ``trainperf peak`` prints it per dtype.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

DTYPES = ("bf16", "fp16", "tf32", "fp32")


@dataclass(frozen=True)
class Peak:
    """One dtype's measured matmul rate on one device."""

    device: str
    dtype: str
    n: int
    tflops: float  # the best window's
    windows: int


def _torch_dtype(name: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32, "fp32": torch.float32}[name]


def measure(device: str, dtype: str, *, n: int = 8192, windows: int = 5, window_s: float = 0.5) -> Peak:
    """Dense ``n`` x ``n`` matmul TFLOP/s of ``dtype`` on ``device``; TF32 is fp32 with TF32 matmuls allowed,
    fp32 without. The global TF32 switch is restored afterwards."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    dev = torch.device(device)
    allow = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    try:
        a = torch.randn(n, n, device=dev, dtype=_torch_dtype(dtype))
        b = torch.randn(n, n, device=dev, dtype=_torch_dtype(dtype))
        per_window = _calibrate(lambda: torch.mm(a, b), dev, window_s)
        rates = [_window(lambda: torch.mm(a, b), dev, per_window) * 2 * n**3 / 1e12 for _ in range(windows)]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow
    return Peak(device=device, dtype=dtype, n=n, tflops=float(f"{max(rates):.4g}"), windows=windows)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _window(fn: Any, device: Any, calls: int) -> float:
    """Calls per second over ``calls`` back-to-back calls, synchronized once at the end."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return calls / (time.perf_counter() - start)


def _calibrate(fn: Any, device: Any, window_s: float) -> int:
    """Warm up (untimed for the result) and return how many calls fill ``window_s``."""
    calls = 1
    while True:
        rate = _window(fn, device, calls)
        if calls / rate >= window_s / 4 or calls >= 1 << 16:
            return max(1, int(rate * window_s))
        calls *= 2


def table(device: str, dtypes: list[str], n: int) -> list[str]:
    """``trainperf peak``'s lines: per dtype, the measured rate beside the datasheet peak of ``mfu.PEAK_FLOPS``."""
    from trainperf.machine.environment import environment_info
    from trainperf.measurement.mfu import peak_flops

    name = environment_info()["gpu_name"] if device.startswith("cuda") else None
    lines = [f"{device}: {name or 'no datasheet peak (not a CUDA device)'}; {n}x{n} matmuls, best window"]
    lines.append(f"{'dtype':<6}  {'measured TFLOP/s':>16}  {'datasheet':>9}  {'share':>6}")
    for dtype in dtypes:
        got = measure(device, dtype, n=n)
        sheet = peak_flops(name, "fp32" if dtype in ("tf32", "fp32") else dtype, tf32=dtype == "tf32")
        share = f"{got.tflops * 1e12 / sheet:.0%}" if sheet else "-"
        lines.append(f"{dtype:<6}  {got.tflops:>16,.1f}  {_tflops(sheet):>9}  {share:>6}")
    return lines


def _tflops(flops: float | None) -> str:
    return "-" if flops is None else f"{flops / 1e12:,.0f}"
