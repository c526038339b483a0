"""Model FLOPs utilisation: training FLOPs counted once per model and batch, against the device's peak.

Peaks are dense (no structured sparsity: half the datasheet's "with sparsity" figure) tensor-core numbers from
the vendors' datasheets, in FLOP/s, for the precision the case computes in: bf16/fp16 autocast, fp32 with TF32
allowed, or plain fp32.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from trainperf.results import Utilisation

if TYPE_CHECKING:
    from torch import nn

    from trainperf.measurement.cases import Case

T = 1e12
_HOPPER = {"bf16": 989 * T, "fp16": 989 * T, "tf32": 495 * T, "fp32": 67 * T}  # H100/H200 SXM, GH200
_HOPPER_NVL = {"bf16": 835 * T, "fp16": 835 * T, "tf32": 418 * T, "fp32": 60 * T}  # H100 NVL, H200 NVL
_A100 = {"bf16": 312 * T, "fp16": 312 * T, "tf32": 156 * T, "fp32": 19.5 * T}
# Dense datasheet peaks by the whole CUDA device name (``torch.cuda.get_device_name``, lower case, without the
# "nvidia "/"tesla " prefix). Matched whole, never by substring: "h200 nvl" is not an "h200", "l40" not an "l40s".
# A name not listed gets no MFU rather than a neighbour's peak; add it here (``trainperf peak`` measures one).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "h200": _HOPPER,
    "h200 nvl": _HOPPER_NVL,
    "h100 80gb hbm3": _HOPPER,
    "h100 sxm5 80gb": _HOPPER,
    "gh200 480gb": _HOPPER,
    "h100 pcie": {"bf16": 756 * T, "fp16": 756 * T, "tf32": 378 * T, "fp32": 51 * T},
    "h100 nvl": _HOPPER_NVL,
    "a100-sxm4-80gb": _A100,
    "a100-sxm4-40gb": _A100,
    "a100-pcie-40gb": _A100,
    "a100 80gb pcie": _A100,
    "l40s": {"bf16": 362 * T, "fp16": 362 * T, "tf32": 183 * T, "fp32": 91.6 * T},
    "l40": {"bf16": 181 * T, "fp16": 181 * T, "tf32": 90.5 * T, "fp32": 90.5 * T},
    "l4": {"bf16": 121 * T, "fp16": 121 * T, "tf32": 60 * T, "fp32": 30.3 * T},
    "a10": {"bf16": 125 * T, "fp16": 125 * T, "tf32": 62.5 * T, "fp32": 31.2 * T},
    "v100-sxm2-16gb": {"fp16": 125 * T, "fp32": 15.7 * T},
    "v100-sxm2-32gb": {"fp16": 125 * T, "fp32": 15.7 * T},
    "v100-pcie-16gb": {"fp16": 112 * T, "fp32": 14 * T},
    "v100-pcie-32gb": {"fp16": 112 * T, "fp32": 14 * T},
    "t4": {"fp16": 65 * T, "fp32": 8.1 * T},
}


def math_mode(precision: str, tf32: bool) -> str:
    """The peak that applies: autocast dtype, else TF32 when matmuls may use it, else fp32."""
    if precision in ("bf16", "fp16"):
        return precision
    return "tf32" if tf32 else "fp32"


def device_model(device_name: str) -> str:
    """The table's key for a CUDA device name: "NVIDIA H200 NVL" -> "h200 nvl"."""
    name = " ".join(device_name.lower().split())
    for prefix in ("nvidia ", "tesla "):
        name = name.removeprefix(prefix)
    return name


def peak_flops(device_name: str | None, precision: str, tf32: bool) -> float | None:
    """Datasheet peak FLOP/s of a listed GPU for this case's math, or None (CPU, MPS, an unlisted GPU, a math
    mode the GPU has no tensor cores for)."""
    if not device_name:
        return None
    peaks = PEAK_FLOPS.get(device_model(device_name))
    return None if peaks is None else peaks.get(math_mode(precision, tf32))


def training_flops(model: nn.Module, batch_size: int, image_size: int = 32) -> int | None:
    """FLOPs of one training step's forward and backward at ``batch_size``, counted by
    ``torch.utils.flop_counter`` on a meta-device copy (no memory, no compute); None if the model cannot be
    copied to the meta device."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    try:
        meta = copy.deepcopy(model).to("meta")
    except Exception:  # a model with state that cannot move to meta: MFU is then unknown, not an error
        return None
    meta.train()
    x = torch.empty(batch_size, 3, image_size, image_size, device="meta")
    y = torch.zeros(batch_size, dtype=torch.long, device="meta")
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            F.cross_entropy(meta(x), y).backward()
    except Exception:
        return None
    return int(counter.get_total_flops())


def utilisation(model: nn.Module, case: Case, img_per_s_per_device: float, *, tf32: bool) -> Utilisation:
    """Training FLOPs per image (counted on a meta-device copy: call it after the timed rounds) and, on a GPU
    with a known peak, the achieved TFLOP/s and MFU of one device running ``img_per_s_per_device``."""
    from trainperf.machine.environment import environment_info

    flops = training_flops(model, case.batch_size)
    per_image = flops / case.batch_size if flops else None
    achieved = per_image * img_per_s_per_device if per_image else None
    gpu = environment_info()["gpu_name"] if case.device == "cuda" else None
    peak = peak_flops(gpu, case.precision, tf32)
    return Utilisation(
        train_flops_per_image=per_image,
        achieved_tflops=None if achieved is None else _significant(achieved / 1e12),
        peak_tflops=None if peak is None else peak / 1e12,
        mfu=None if achieved is None or peak is None else _significant(achieved / peak),
    )


def _significant(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits: a small model's 0.0004 TFLOP/s must not be recorded as 0."""
    return float(f"{value:.{digits}g}")
