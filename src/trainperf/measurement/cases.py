"""The case matrix: which training configurations a run benchmarks, and their stable test IDs.

Pure logic (no torch, no pytest) so it can be unit-tested with plain values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

DEVICES = ("cpu", "cuda", "mps")
COMPILE_MODES = ("eager", "default", "reduce-overhead", "max-autotune")
# Modes whose compiled graphs are replayed as CUDA graphs (max-autotune turns cudagraphs on too).
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")
PRECISIONS = ("fp32", "bf16", "fp16")
MEMORY_FORMATS = ("contiguous", "channels_last")
OPTIMIZERS = ("fused", "foreach", "forloop")
BUILTIN_MODELS = ("resnet18", "resnet18_cifar")

AXES = ("device", "compile", "precision", "memory_format", "model", "batch_size", "optimizer")


@dataclass(frozen=True, order=True)
class Case:
    """One training configuration; its ``id`` is the pytest parameter ID and the baseline key."""

    device: str
    compile: str
    precision: str
    memory_format: str
    model: str
    batch_size: int
    optimizer: str

    @property
    def id(self) -> str:
        return "-".join(
            (
                self.device,
                self.compile.replace("-", "_"),
                self.precision,
                self.memory_format,
                model_token(self.model),
                f"b{self.batch_size}",
                self.optimizer,
            )
        )

    @property
    def compiled(self) -> bool:
        return self.compile != "eager"

    @property
    def cudagraphs(self) -> bool:
        return self.device == "cuda" and self.compile in CUDAGRAPH_MODES

    def unsupported_reason(self) -> str | None:
        """Why this combination cannot run anywhere (independent of the hardware present), or None."""
        if self.compile in CUDAGRAPH_MODES and self.device != "cuda":
            return f"compile mode {self.compile!r} replays CUDA graphs and runs on CUDA only"
        if self.precision == "fp16" and self.device != "cuda":
            return "fp16 autocast with GradScaler is benchmarked on CUDA only (use bf16 elsewhere)"
        if self.optimizer == "fused" and self.device == "mps":
            return "fused Adam is not benchmarked on MPS"
        return None

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def model_token(model: str) -> str:
    """A model name as it appears in IDs: ``pkg.mod:factory`` becomes ``pkg.mod.factory``."""
    return re.sub(r"[^A-Za-z0-9_.]", ".", model)


# The article's table (CPU eager, CUDA eager, CUDA compile) plus the CUDA fast path, the fused-versus-foreach pair
# that makes optimizer-implementation regressions visible, and the peak case: the fastest configuration the suite
# knows (CIFAR ResNet-18, bf16, channels_last, fused Adam, CUDA graphs, batches staged on the GPU, a large batch),
# so every report shows the gap between this stack and the hardware (target on an H200: 100k img/s).
DEFAULT_CASES: tuple[Case, ...] = (
    Case("cpu", "eager", "fp32", "contiguous", "resnet18", 128, "foreach"),
    Case("cuda", "eager", "fp32", "contiguous", "resnet18", 128, "foreach"),
    Case("cuda", "default", "fp32", "contiguous", "resnet18", 128, "foreach"),
    Case("cuda", "eager", "bf16", "channels_last", "resnet18_cifar", 128, "foreach"),
    Case("cuda", "eager", "bf16", "channels_last", "resnet18_cifar", 128, "fused"),
    Case("cuda", "reduce-overhead", "bf16", "channels_last", "resnet18_cifar", 128, "fused"),
    PEAK_CASE := Case("cuda", "reduce-overhead", "bf16", "channels_last", "resnet18_cifar", 1024, "fused"),
)
MPS_DEFAULT_CASE = Case("mps", "eager", "fp32", "contiguous", "resnet18", 128, "foreach")

FULL_AXES: Mapping[str, Sequence[object]] = {
    "device": ("cpu", "cuda"),
    "compile": COMPILE_MODES,
    "precision": PRECISIONS,
    "memory_format": MEMORY_FORMATS,
    "model": BUILTIN_MODELS,
    "batch_size": (128,),
    "optimizer": ("fused", "foreach"),
}


def build_matrix(
    matrix: str,
    overrides: Mapping[str, Sequence[object]],
    *,
    mps_available: bool = False,
) -> list[Case]:
    """Expand the named base matrix, replacing each overridden axis by the values given.

    ``default`` is the curated list above; ``full`` is the cross product of FULL_AXES minus the combinations
    that cannot run anywhere.  An axis named in ``overrides`` replaces that field of every base case with each
    given value (so ``--trainperf-batch-size 64,256`` runs every default case at both sizes).  Combinations the
    user asked for explicitly that cannot run are kept: the suite skips them with the reason.
    """
    unknown = set(overrides) - set(AXES)
    if unknown:
        raise ValueError(f"unknown case axes: {sorted(unknown)}")
    if matrix == "default":
        base: list[Case] = list(DEFAULT_CASES)
        if mps_available:
            base.append(MPS_DEFAULT_CASE)
    elif matrix == "full":
        axes = dict(FULL_AXES)
        if mps_available:
            axes["device"] = (*axes["device"], "mps")
        base = [Case(*values) for values in itertools.product(*(axes[a] for a in AXES))]  # type: ignore[arg-type]
        base = [c for c in base if c.unsupported_reason() is None]
    else:
        raise ValueError(f"unknown matrix {matrix!r}; expected 'default' or 'full'")
    return _dedupe(_override(c, overrides) for c in base)


def _override(case: Case, overrides: Mapping[str, Sequence[object]]) -> Iterable[Case]:
    names = [a for a in AXES if a in overrides]
    for values in itertools.product(*(overrides[a] for a in names)):
        yield replace(case, **dict(zip(names, values, strict=True)))


def _dedupe(groups: Iterable[Iterable[Case]]) -> list[Case]:
    seen: dict[str, Case] = {}
    for group in groups:
        for case in group:
            seen.setdefault(case.id, case)
    return list(seen.values())


@dataclass(frozen=True)
class LoaderCase:
    """One DataLoader configuration; ``workers`` None means the device-resident reference loader."""

    device: str
    workers: int | None
    pin_memory: bool

    @property
    def id(self) -> str:
        if self.workers is None:
            return f"{self.device}-resident"
        return f"{self.device}-w{self.workers}-{'pin' if self.pin_memory else 'nopin'}"


# num_workers of the DataLoader benchmark unless --trainperf-loader-workers names its own.
DEFAULT_LOADER_WORKERS = (0, 2, 4)


def _cores(n: int) -> str:
    return f"{n} usable core{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class LoaderWorkers:
    """The DataLoader benchmark's worker counts on this machine, and the default counts it has no cores for."""

    counts: tuple[int, ...]
    cores: int
    dropped: tuple[int, ...] = ()  # default counts above ``cores``, each capped at ``cores``

    def reasons(self) -> list[str]:
        """Why each dropped count did not run, one phrase each: ``4 workers > 2 usable cores``."""
        return [f"{w} workers > {_cores(self.cores)}" for w in self.dropped]

    def note(self) -> str | None:
        """The run header's line about the dropped counts, or None when every default count runs."""
        if not self.dropped:
            return None
        default = ",".join(map(str, DEFAULT_LOADER_WORKERS))
        return (
            f"DataLoader workers: {','.join(map(str, self.counts))} (the default {default} capped at the "
            f"{_cores(self.cores)}: {'; '.join(self.reasons())}; --trainperf-loader-workers runs a list as given)"
        )


def loader_workers(requested: Sequence[int] | None, cores: int) -> LoaderWorkers:
    """The worker counts of the DataLoader benchmark on a machine with ``cores`` usable cores.

    A list the user gave (``requested``) runs as given, past the cores too: they asked for it.  The default is
    capped at ``cores`` and de-duplicated, because workers beyond the cores measure how the scheduler shares
    them, not the loader (torch's DataLoader warns about it): 0,2,4 on 2 cores runs 0,2.
    """
    if requested is not None:
        return LoaderWorkers(tuple(requested), cores)
    capped = tuple(dict.fromkeys(min(w, cores) for w in DEFAULT_LOADER_WORKERS))
    return LoaderWorkers(capped, cores, tuple(w for w in DEFAULT_LOADER_WORKERS if w > cores))


def loader_matrix(devices: Iterable[str], workers: Sequence[int]) -> list[LoaderCase]:
    """num_workers x pin_memory per device (pinning only where there is a device to copy to), plus the
    device-resident reference."""
    out: list[LoaderCase] = []
    for device in dict.fromkeys(devices):
        pins = (False, True) if device == "cuda" else (False,)
        out.extend(LoaderCase(device, w, p) for w in workers for p in pins)
        out.append(LoaderCase(device, None, False))
    return out


_TRAINING_ID = re.compile(
    rf"^({'|'.join(DEVICES)})-({'|'.join(m.replace('-', '_') for m in COMPILE_MODES)})-({'|'.join(PRECISIONS)})"
    rf"-({'|'.join(MEMORY_FORMATS)})-[A-Za-z0-9_.]+-b[1-9][0-9]*-({'|'.join(OPTIMIZERS)})"
    r"(-ws[1-9][0-9]*(-nodes[1-9][0-9]*)?)?$"
)
_LOADER_ID = re.compile(rf"^({'|'.join(DEVICES)})-(w[0-9]+-(pin|nopin)|resident)$")


def is_benchmark_param_id(text: str) -> bool:
    """Whether ``text`` is a parameter id this suite generates: a training case (single-process or distributed)
    or a loader configuration."""
    return bool(_TRAINING_ID.match(text) or _LOADER_ID.match(text))


def compile_matrix(cases: Iterable[Case]) -> list[Case]:
    """The compiled training cases, each measured for cold- and warm-cache compile time."""
    return [c for c in cases if c.compiled]


# Data-parallel training: the CPU case is the tiny gloo configuration that exercises the path on any machine;
# the CUDA pair is the fast single-GPU case, eager and compiled (compiled DDP splits graphs at bucket edges).
DISTRIBUTED_CASES: tuple[Case, ...] = (
    Case("cpu", "eager", "fp32", "contiguous", "resnet18", 32, "foreach"),
    Case("cuda", "eager", "bf16", "channels_last", "resnet18_cifar", 128, "fused"),
    Case("cuda", "default", "bf16", "channels_last", "resnet18_cifar", 128, "fused"),
)
DISTRIBUTED_DEVICES = ("cpu", "cuda")
CPU_DEFAULT_WORLD_SIZES = (1, 2)


@dataclass(frozen=True)
class DistributedCase:
    """A training case run data-parallel by ``world_size`` processes over ``nnodes`` nodes; the batch size is
    per process, so the global batch grows with the world size (weak scaling)."""

    case: Case
    world_size: int
    nnodes: int = 1

    @property
    def id(self) -> str:
        nodes = f"-nodes{self.nnodes}" if self.nnodes > 1 else ""
        return f"{self.case.id}-ws{self.world_size}{nodes}"

    @property
    def nproc_per_node(self) -> int:
        return self.world_size // self.nnodes

    def unsupported_reason(self) -> str | None:
        if reason := self.case.unsupported_reason():
            return reason
        if self.case.device not in DISTRIBUTED_DEVICES:
            return f"distributed training is benchmarked on CPU (gloo) and CUDA (NCCL), not {self.case.device}"
        if self.world_size % self.nnodes:
            return f"world size {self.world_size} is not a multiple of {self.nnodes} nodes"
        return None


def distributed_matrix(
    overrides: Mapping[str, Sequence[object]],
    world_sizes: Sequence[int] | None,
    *,
    gpus_per_node: int,
    nnodes: int = 1,
) -> list[DistributedCase]:
    """DISTRIBUTED_CASES with the same axis overrides as the single-process matrix, each at every world size.

    ``world_sizes`` None means: ``nnodes`` x 1, 2, ..., the visible GPUs of a node for CUDA cases (one when
    there is none, so the case skips with the reason), ``nnodes`` x 1 and 2 processes for CPU cases.
    """
    out: list[DistributedCase] = []
    for case in _dedupe(_override(c, overrides) for c in DISTRIBUTED_CASES):
        if world_sizes is not None:
            sizes: Sequence[int] = world_sizes
        elif case.device == "cuda":
            sizes = [nnodes * k for k in range(1, max(1, gpus_per_node) + 1)]
        else:
            sizes = [nnodes * k for k in CPU_DEFAULT_WORLD_SIZES]
        out.extend(DistributedCase(case, size, nnodes) for size in sorted(set(sizes)))
    return out
