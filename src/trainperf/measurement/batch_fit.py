"""Whether a benchmark's batches fit in its data, decided before any benchmark runs. Pure logic, no pytest.

Every loader drops its last partial batch, so a benchmark whose batch is larger than the images it may use
would find no batch at all, after minutes of compiling or launching. The plugin checks each selected test with
``problem`` while collection finishes and stops the run with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainperf.measurement.cases import Case, DistributedCase
from trainperf.settings import Settings

# The CPU epoch's default subset: a whole CIFAR-10 epoch takes minutes on a laptop core.
CPU_EPOCH_IMAGES = 5120
# The DataLoader benchmark's batch when --trainperf-batch-size is not given.
DEFAULT_LOADER_BATCH = 128


def epoch_limit(settings: Settings, device: str) -> int | None:
    """Images in one epoch round (None: the whole dataset)."""
    if settings.epoch_images is not None:
        return settings.epoch_images
    return CPU_EPOCH_IMAGES if device == "cpu" else None


def loader_batch_size(settings: Settings) -> int:
    return settings.batch_size[0] if settings.batch_size else DEFAULT_LOADER_BATCH


@dataclass(frozen=True)
class Need:
    """What one benchmark needs of the dataset."""

    images: int  # at least this many images
    why: str  # e.g. "batch 128", "batch 64 per process x 2 processes"
    limit: int | None = None  # the benchmark uses at most this many (an epoch subset); None: all


def need(kind: str, param: Case | DistributedCase | None, settings: Settings) -> Need | None:
    """What a ``train_step``, ``epoch``, ``dataloader`` or ``ddp`` benchmark of ``param`` needs; None for the
    benchmarks that use no dataset (compile time)."""
    if kind == "ddp" and isinstance(param, DistributedCase):
        batch, size = param.case.batch_size, param.world_size
        # each process stages whole batches from its own 1/world-size shard
        return Need(batch * size, f"batch {batch} per process x {size} processes")
    if kind == "dataloader":
        batch = loader_batch_size(settings)
        return Need(batch, f"batch {batch}")
    if kind == "epoch" and isinstance(param, Case):
        return Need(param.batch_size, f"batch {param.batch_size}", epoch_limit(settings, param.device))
    if kind == "train_step" and isinstance(param, Case):
        return Need(param.batch_size, f"batch {param.batch_size}")
    return None


def problem(test: str, required: Need, images: int, source: str) -> str | None:
    """Why ``test`` cannot find one whole batch in ``images`` images from ``source``, or None when it can."""
    if required.limit is not None and required.limit < images:
        if required.images <= required.limit:
            return None
        return (
            f"{test}: {required.why} needs {required.images} images, more than the epoch's {required.limit} "
            f"(--trainperf-epoch-images; {CPU_EPOCH_IMAGES:,} by default on CPU)"
        )
    if required.images <= images:
        return None
    return (
        f"{test}: {required.why} needs {required.images} images, more than the dataset's {images} ({source}); "
        f"lower --trainperf-batch-size or use more images"
    )
