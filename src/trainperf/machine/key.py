"""Which baseline file a machine reads: a key built from what decides training throughput.

Pure logic: ``info`` is ``environment.environment_info()`` or the ``machine_info["trainperf"]`` of a saved run.
"""

from __future__ import annotations

import re
from typing import Any


def _slug(text: str) -> str:
    text = re.sub(r"\(r\)|\(tm\)|\bcpu\b|@.*$", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


def _major_minor(version: str | None) -> str | None:
    if not version:
        return None
    match = re.match(r"(\d+)\.(\d+)", str(version))
    return f"{match.group(1)}.{match.group(2)}" if match else None


def machine_key(info: dict[str, Any]) -> str:
    """``cuda-<gpu model>-torch<M.m>-cuda<M.m>`` on a GPU machine, ``mps-<cpu model>-torch<M.m>`` on Apple
    silicon, ``cpu-<cpu model>-<cores>c-torch<M.m>`` otherwise.

    Only what moves throughput is in the key; driver, cuDNN, patch versions and flags are recorded in the
    baseline's provenance instead, so a driver update keeps comparing against the same baseline (and shows up
    there when a verdict needs explaining).
    """
    torch_mm = _major_minor(info.get("torch")) or "unknown"
    if info.get("cuda_available"):
        cuda_mm = _major_minor(info.get("cuda_runtime")) or "unknown"
        return f"cuda-{_slug(info.get('gpu_name') or 'gpu')}-torch{torch_mm}-cuda{cuda_mm}"
    if info.get("mps_available"):
        return f"mps-{_slug(info.get('cpu_model') or 'apple')}-torch{torch_mm}"
    return f"cpu-{_slug(info.get('cpu_model') or 'cpu')}-{info.get('cpu_count') or 0}c-torch{torch_mm}"
