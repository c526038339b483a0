"""What a result's ``config`` holds beside its case, a run's scaling efficiency, and ``K``: every stored key as
an attribute, for the readers that need keys as table columns."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from trainperf.results.records import _KIND, _NOT_STORED, _PARTS, KINDS, DdpStep, Result

# --- what a result's ``config`` holds, beside the case's own fields -------------------------------------------


def trainer_config(case: Mapping[str, Any], optimizer: type) -> dict[str, Any]:
    """A training case, and the optimizer class actually used (a fixture can replace Adam)."""
    return {**case, "optimizer_class": f"{optimizer.__module__}.{optimizer.__qualname__}"}


def epoch_config(trainer: Mapping[str, Any], loader: Any) -> dict[str, Any]:
    """A training case and the loader an epoch ran through, read off the loader (an overridden one as it is)."""
    dataset = getattr(loader, "dataset", None)
    return {
        **trainer,
        "num_workers": getattr(loader, "num_workers", None),
        "pin_memory": bool(getattr(loader, "pin_memory", False)),
        "persistent_workers": bool(getattr(loader, "persistent_workers", False)),
        "drop_last": getattr(loader, "drop_last", None),
        "dataset_images": len(dataset) if hasattr(dataset, "__len__") else None,
    }


def loader_config(device: str, workers: int | None, pin_memory: bool, batch_size: int) -> dict[str, Any]:
    """A DataLoader case; no workers means the device-resident loader."""
    return {
        "device": device,
        "num_workers": workers,
        "pin_memory": pin_memory,
        "resident": workers is None,
        "batch_size": batch_size,
    }


def ddp_config(case: Mapping[str, Any], world_size: int, nnodes: int) -> dict[str, Any]:
    return {**case, "world_size": world_size, "nnodes": nnodes}


def scaling_efficiency(img_per_s: Mapping[int, float]) -> dict[int, float]:
    """Per world size: its img/s per process over the smallest world size's img/s per process."""
    reference = min(img_per_s)
    per_process = img_per_s[reference] / reference
    return {size: round(rate / (size * per_process), 4) for size, rate in img_per_s.items()}


def with_scaling(records: Sequence[Result]) -> list[Result]:
    """``records`` with each data-parallel result's scaling efficiency against the smallest world size of its
    case in the same run (a run's property: computed when a run is shown or saved, whatever order cases ran)."""
    groups: dict[str, dict[int, float]] = {}
    for rec in records:
        if isinstance(rec, DdpStep) and rec.distributed.distributed_group and rec.throughput.img_per_s > 0:
            sizes = groups.setdefault(rec.distributed.distributed_group, {})
            sizes[rec.distributed.world_size] = rec.throughput.img_per_s
    out: list[Result] = []
    for rec in records:
        group = groups.get(rec.distributed.distributed_group or "") if isinstance(rec, DdpStep) else None
        if isinstance(rec, DdpStep) and group and rec.distributed.world_size in group:
            scaled = dataclasses.replace(
                rec.distributed,
                scaling_efficiency=scaling_efficiency(group)[rec.distributed.world_size],
                efficiency_reference_world_size=min(group),
            )
            rec = dataclasses.replace(rec, distributed=scaled)
        out.append(rec)
    return out


# --- the stored names, for readers that need them as columns -------------------------------------------------


def _stored(cls: type) -> list[str]:
    names: list[str] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("flat"):
            names += _stored(_PARTS[f.name])
        elif f.name not in _NOT_STORED:
            names.append(f.name)
    return names


class _Names:
    """Every stored key as an attribute (``K.img_per_s == "img_per_s"``): tables and CSV name their columns
    with it, so a key is spelled only here and a misspelt one is an AttributeError, not an empty column."""

    def __init__(self, names: list[str]) -> None:
        self.__dict__.update({name: name for name in names})

    def __getattr__(self, name: str) -> str:  # only for names not set: a typo
        raise AttributeError(f"no stored result field {name!r}")


K: Any = _Names(sorted({n for kind in KINDS.values() for n in _stored(kind)} | {_KIND}))
