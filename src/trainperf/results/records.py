"""What a trainperf benchmark result is: one frozen record per kind (train step, epoch, DataLoader, compile time,
data-parallel train step), built from shared parts.

Results travel as pytest-benchmark's ``extra_info``: one flat JSON object per benchmark, in every saved run and
autosave. This module is the only one that knows that layout. Writers build a record and store
``to_extra_info()``; readers call ``from_extra_info()`` and use attributes. A part marked ``flat`` spreads its
fields into the same object (``img_per_s`` sits beside ``step_ms``), so files written before the records existed
read the same; ``machine_load`` is the one nested object.

Every result is written with ``trainperf_result_version``. A result without it has version 1's layout (runs saved
before the field existed); a newer version is an error that names it. Keys this version does not know are kept
(``unknown``) and written back, so reading and rewriting a newer file loses nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from trainperf.machine.load import MachineLoad
from trainperf.telemetry import TelemetrySummary

RESULT_VERSION = 1
_KIND = "trainperf_kind"
_VERSION = "trainperf_result_version"
_FLAT = {"flat": True}


class ResultError(ValueError):
    """A stored result that is not of the expected shape; the message names the key."""


@dataclass(frozen=True, kw_only=True)
class Rates:
    """Throughput of the timed rounds: median img/s, each round's img/s, IQR/median, whether too noisy to trust."""

    img_per_s: float
    img_per_s_rounds: tuple[float, ...]
    img_per_s_spread: float | None = None
    noisy: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Which case a result is, and what it ran with."""

    case_id: str
    config: dict[str, Any] = field(default_factory=dict)
    backend_flags: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None
    machine_load: MachineLoad | None = None

    def described(self) -> dict[str, Any]:
        """The case's configuration, backend flags and settings, as a baseline's provenance keeps them."""
        return {name: getattr(self, name) for name in ("backend_flags", "settings", "config")}


@dataclass(frozen=True, kw_only=True)
class Compilation:
    """Graphs compiled since the case started, graph breaks, graphs compiled inside timed rounds (must be 0) and
    CUDA-graph skips (CUDA-graph modes); None without Dynamo counters."""

    graphs: int | None = None
    graph_breaks: int | None = None
    recompiles_in_rounds: int | None = None
    cudagraph_skips: int | None = None

    def since(self, before: Compilation) -> Compilation:
        """What was compiled between two readings of the running totals (None where either is unknown)."""

        def diff(now: int | None, then: int | None) -> int | None:
            return None if now is None or then is None else now - then

        return Compilation(
            graphs=diff(self.graphs, before.graphs),
            graph_breaks=diff(self.graph_breaks, before.graph_breaks),
            cudagraph_skips=diff(self.cudagraph_skips, before.cudagraph_skips),
        )


@dataclass(frozen=True, kw_only=True)
class Utilisation:
    """Training FLOPs per image and, on a GPU with a known peak, achieved TFLOP/s and MFU of one device."""

    train_flops_per_image: float | None = None
    achieved_tflops: float | None = None
    peak_tflops: float | None = None
    mfu: float | None = None


@dataclass(frozen=True, kw_only=True)
class Health:
    """What the timed training rounds did besides running: loss, memory, device telemetry, compilation."""

    loss_first: float | None = None
    loss_last: float | None = None
    peak_mem_mib: float | None = None
    peak_mem_kind: str | None = None
    telemetry: TelemetrySummary | None = field(default=None, metadata=_FLAT)
    compilation: Compilation | None = field(default=None, metadata=_FLAT)


@dataclass(frozen=True, kw_only=True)
class Distributed:
    """How a data-parallel launch ran, and its scaling against the case's smallest world size in the run."""

    world_size: int
    img_per_s_per_device: float | None = None
    nnodes: int | None = None
    nproc_per_node: int | None = None
    backend: str | None = None
    threads_per_rank: int | None = None
    global_batch_size: int | None = None
    telemetry_rank: int | None = None
    torch: str | None = None
    nccl_version: str | None = None
    distributed_group: str | None = None
    launch_s: float | None = None
    scaling_efficiency: float | None = None
    efficiency_reference_world_size: int | None = None


@dataclass(frozen=True, kw_only=True)
class Result:
    """What every result has; ``unknown`` keeps keys of a newer trainperf."""

    KIND: ClassVar[str] = ""
    identity: Identity = field(metadata=_FLAT)
    unknown: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        return self.KIND

    @property
    def case_id(self) -> str:
        return self.identity.case_id

    @property
    def rates(self) -> Rates | None:
        """Throughput, for the kinds that have it (the gate judges only these)."""
        return getattr(self, "throughput", None)

    def to_extra_info(self) -> dict[str, Any]:
        """The flat JSON object pytest-benchmark stores for this result."""
        return {_KIND: self.kind, _VERSION: RESULT_VERSION, **_flatten(self), **self.unknown}


@dataclass(frozen=True, kw_only=True)
class TrainStep(Result):
    """Training-step throughput: windows of many steps, one synchronization at the end of each."""

    KIND: ClassVar[str] = "train_step"
    throughput: Rates = field(metadata=_FLAT)
    step_ms: float | None = None
    window_s_rounds: tuple[float, ...] = ()
    steps_per_round: int | None = None
    rounds: int | None = None
    compile_s: float | None = None
    first_step_s: float | None = None
    warmup_steps: int | None = None
    health: Health | None = field(default=None, metadata=_FLAT)
    utilisation: Utilisation | None = field(default=None, metadata=_FLAT)


@dataclass(frozen=True, kw_only=True)
class DdpStep(TrainStep):
    """A data-parallel training step: one torchrun launch; windows are the slowest rank's."""

    KIND: ClassVar[str] = "ddp_train_step"
    distributed: Distributed = field(metadata=_FLAT)

    @classmethod
    def of(cls, step: TrainStep, distributed: Distributed, **changes: Any) -> DdpStep:
        """Rank 0's train-step result as a data-parallel one."""
        values = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
        return cls(**{**values, **changes, "distributed": distributed})


@dataclass(frozen=True, kw_only=True)
class Epoch(Result):
    """Whole epochs through the real DataLoader."""

    KIND: ClassVar[str] = "epoch"
    throughput: Rates = field(metadata=_FLAT)
    epoch_s: float | None = None
    epoch_s_rounds: tuple[float, ...] = ()
    images_per_epoch: int | None = None
    rounds: int | None = None
    health: Health | None = field(default=None, metadata=_FLAT)
    utilisation: Utilisation | None = field(default=None, metadata=_FLAT)


@dataclass(frozen=True, kw_only=True)
class Loader(Result):
    """Images per second out of a loader onto its device, no training."""

    KIND: ClassVar[str] = "dataloader"
    throughput: Rates = field(metadata=_FLAT)
    images_per_round: int | None = None
    rounds: int | None = None


@dataclass(frozen=True, kw_only=True)
class CompileTime(Result):
    """Cold- and warm-cache compile time, each in a fresh process."""

    KIND: ClassVar[str] = "compile_time"
    compile_cold_s: float | None = None
    compile_warm_s: float | None = None
    warm_speedup: float | None = None
    first_step_cold_s: float | None = None
    first_step_warm_s: float | None = None
    steady_step_s: float | None = None
    autotune_s: float | None = None  # eager first step above steady (cuDNN autotuning), kept out of compile time
    process_cold_s: float | None = None
    process_warm_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class Other(Result):
    """A kind this trainperf does not know (written by a newer one): listed, never judged."""

    other_kind: str = ""

    @property
    def kind(self) -> str:
        return self.other_kind


KINDS: dict[str, type[Result]] = {k.KIND: k for k in (TrainStep, DdpStep, Epoch, Loader, CompileTime)}


def is_result(extra: object) -> bool:
    """Whether a benchmark's ``extra_info`` is a trainperf result (a file may hold other suites' benchmarks)."""
    return isinstance(extra, Mapping) and isinstance(extra.get(_KIND), str)


def from_extra_info(extra: Mapping[str, Any], *, case_id: str | None = None) -> Result:
    """The record stored in ``extra``; ResultError naming the key that is wrong. ``case_id`` stands in for a
    result saved without one (the benchmark's pytest parameter id)."""
    if case_id is not None and "case_id" not in extra:
        extra = {**extra, "case_id": case_id}
    if not is_result(extra):
        raise ResultError(f"{_KIND} is missing or not a string")
    version = extra.get(_VERSION, 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > RESULT_VERSION:
        raise ResultError(f"{_VERSION} {version!r}: this trainperf reads up to {RESULT_VERSION} (upgrade it)")
    kind = extra[_KIND]
    cls = KINDS.get(kind, Other)
    used: set[str] = {_KIND, _VERSION}
    values = _build_fields(cls, extra, used)
    if cls is Other:
        values["other_kind"] = kind
    unknown = {k: v for k, v in extra.items() if k not in used}
    return cls(**values, unknown=unknown)


# --- the flat layout ---------------------------------------------------------------------------------------


_NOT_STORED = ("unknown", "other_kind")  # kept beside the stored fields, or stored as the kind


def _flatten(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        if f.name in _NOT_STORED:
            continue
        value = getattr(record, f.name)
        if f.metadata.get("flat"):
            out.update(_flat_part(value))
        elif isinstance(value, MachineLoad):
            out[f.name] = value.as_dict()
        else:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _flat_part(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, TelemetrySummary):
        return value.as_extra_info()
    return _flatten(value)


# The record type of each flat part, by field name (the annotations are strings under postponed evaluation).
_PARTS: dict[str, type] = {
    "identity": Identity,
    "throughput": Rates,
    "health": Health,
    "utilisation": Utilisation,
    "distributed": Distributed,
    "telemetry": TelemetrySummary,
    "compilation": Compilation,
}


def _build_fields(cls: type, extra: Mapping[str, Any], used: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in _NOT_STORED:
            continue
        if f.metadata.get("flat"):
            part = _build_part(_PARTS[f.name], extra, used)
            if part is None and not _optional(f):
                first = dataclasses.fields(_PARTS[f.name])[0].name
                raise ResultError(f"{first} is missing")
            values[f.name] = part
            continue
        if f.name not in extra:
            continue  # its default
        used.add(f.name)
        values[f.name] = _checked(f, extra[f.name])
    return values


def _build_part(cls: type, extra: Mapping[str, Any], used: set[str]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    flat_children = any(f.metadata.get("flat") for f in dataclasses.fields(cls))
    if not flat_children and not names & set(extra):
        return None  # a part none of whose keys were written: absent, not empty
    values = _build_fields(cls, extra, used)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in values:
            if f.metadata.get("flat") or cls is TelemetrySummary:
                values[f.name] = None
            else:
                raise ResultError(f"{f.name} is missing")
    if flat_children and all(v is None for v in values.values()):
        return None
    return cls(**values)


def _optional(f: dataclasses.Field[Any]) -> bool:
    return "None" in str(f.type)


def _checked(f: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` as field ``f`` holds it; ResultError naming the key when it is of another type."""
    if value is None:
        return None
    kind = str(f.type)
    if f.name == "machine_load":
        return MachineLoad.from_dict(value)
    if kind.startswith("tuple[float"):
        if not isinstance(value, list) or not all(_number(v) for v in value):
            raise ResultError(f"{f.name} must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if kind.startswith(("float", "int")) and not _number(value):
        raise ResultError(f"{f.name} must be a number or null, got {value!r}")
    if kind.startswith("str") and not isinstance(value, str):
        raise ResultError(f"{f.name} must be a string, got {value!r}")
    if kind.startswith("dict") and not isinstance(value, dict):
        raise ResultError(f"{f.name} must be an object, got {value!r}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
