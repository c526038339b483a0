"""What decides throughput besides the code: library versions, the device, and the backend flags in force."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import warnings
from functools import cache
from typing import Any


def apply_backend_flags(*, tf32: bool, cudnn_benchmark: bool) -> dict[str, Any]:
    """Set cuDNN autotuning and TF32 explicitly (never rely on a library default) and return what is in force."""
    import torch

    torch.backends.cudnn.benchmark = cudnn_benchmark
    # "high" lets matmuls use TF32; torch >= 2.9 deprecates allow_tf32 and refuses mixing the two APIs,
    # so cuDNN's switch goes through the API of the same generation.
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        # Reading the legacy allow_tf32 (Inductor's conv templates do) raises "a mix of the legacy and new APIs"
        # unless the legacy switch, conv and RNN all agree: set all three.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a release that deprecates the legacy setter
            torch.backends.cudnn.allow_tf32 = tf32
        for op in (conv, getattr(torch.backends.cudnn, "rnn", None)):
            if op is not None and hasattr(op, "fp32_precision"):
                op.fp32_precision = "tf32" if tf32 else "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = tf32
    return backend_flags()


def backend_flags() -> dict[str, Any]:
    import torch

    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        cudnn_tf32 = conv.fp32_precision == "tf32"
    else:
        cudnn_tf32 = bool(torch.backends.cudnn.allow_tf32)
    matmul_precision = torch.get_float32_matmul_precision()
    return {
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "float32_matmul_precision": matmul_precision,
        "matmul_tf32": matmul_precision != "highest",
        "cudnn_tf32": cudnn_tf32,
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def environment_info() -> dict[str, Any]:
    """Versions and devices, JSON-safe; cached because NVML and CUDA queries are not free."""
    import torch
    import torchvision

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "mps_available": mps_available(),
        "gpu_name": None,
        "gpu_count": 0,
        "gpu_capability": None,
        "gpu_memory_mib": None,
        "gpu_uuid": None,
        "driver": None,
        "cuda_driver": None,
    }
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(
            gpu_name=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_memory_mib=round(props.total_memory / 2**20),
        )
        from trainperf.telemetry import open_gpu

        opened = open_gpu(torch.cuda.current_device())
        if opened is not None:
            identity = opened[1]
            info.update(
                gpu_uuid=identity.uuid,
                driver=identity.driver_version,
                cuda_driver=identity.cuda_driver_version,
            )
    return info


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the platform has one (a container or
    ``taskset`` limits it below ``os.cpu_count()``), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def visible_gpus() -> int:
    """CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_unavailable_reason(device: str) -> str | None:
    """Why this machine cannot run cases on ``device``, or None."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        if torch.version.cuda is None:
            return f"CUDA is not available: torch {torch.__version__} is a CPU-only build"
        return f"CUDA is not available: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU/driver"
    if device == "mps" and not mps_available():
        return "MPS is not available on this machine"
    return None


@cache
def compile_unsupported_reason(device: str) -> str | None:
    """Why torch.compile cannot run here, or None."""
    import torch

    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return f"torch.compile is not supported on this platform (torch {torch.__version__})"
    except Exception as exc:  # an import failure here means the same thing
        return f"torch.compile is unavailable: {exc}"
    if device == "cuda" and importlib.util.find_spec("triton") is None:
        return "torch.compile on CUDA needs triton, which is not installed"
    if device == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++")):
        return "torch.compile on CPU needs a C++ compiler (g++/clang++) on PATH"
    return None


def header_lines(info: dict[str, Any], flags: dict[str, Any]) -> list[str]:
    lines = [
        f"torch {info['torch']}, torchvision {info['torchvision']}, python {info['python']}",
        f"CPU: {info['cpu_model']} ({info['cpu_count']} cores, torch threads {info['torch_threads']})",
    ]
    if info["cuda_available"]:
        lines.append(
            f"CUDA: yes, {info['gpu_count']} x {info['gpu_name']} (sm {info['gpu_capability']}, "
            f"{info['gpu_memory_mib']} MiB), driver {info['driver']}, CUDA runtime {info['cuda_runtime']}, "
            f"driver CUDA {info['cuda_driver']}, cuDNN {info['cudnn']}"
        )
    else:
        lines.append(f"CUDA: not available (torch CUDA build: {info['cuda_runtime']}); CUDA cases will skip")
    if info["mps_available"]:
        lines.append("MPS: available")
    lines.append("backend flags: " + ", ".join(f"{k}={v}" for k, v in flags.items()))
    return lines
