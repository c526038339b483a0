"""CIFAR-10 training data for the benchmarks: the real files, a synthetic stand-in, and the loaders."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms
from torchvision.datasets import CIFAR10

from trainperf.measurement.datadir import (
    BASE_FOLDER,
    READ_ERRORS,
    DataError,
    check_cifar10_contents,
    check_cifar10_dir,
    data_error,
    unpickle,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DataError",
    "DeviceResidentLoader",
    "SyntheticCIFAR10",
    "check_cifar10_contents",
    "check_cifar10_dir",
    "load_cifar10",
    "make_loader",
    "train_transform",
]

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class _CIFAR10Files(CIFAR10):
    """torchvision's CIFAR10 checking that files are present, not their md5 (small test files differ)."""

    def _check_integrity(self) -> bool:
        # Only the training split is loaded, so test_batch may be absent.
        folder = pathlib.Path(self.root, self.base_folder)
        return all((folder / name).is_file() for name, _md5 in self.train_list)

    def _load_meta(self) -> None:
        # torchvision's version md5-checks batches.meta as well.
        meta = unpickle(pathlib.Path(self.root, self.base_folder, self.meta["filename"]))
        self.classes = list(meta[self.meta["key"]])
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


def load_cifar10(root: str | os.PathLike[str], transform: Callable | None = None) -> Dataset:
    """The CIFAR-10 training split from disk, as torchvision's CIFAR10; never downloads.

    Every batch is checked to unpickle with (N, 3072) uint8 pixels and N labels in 0..9; any problem
    raises DataError naming the directory and the file.
    """

    check_cifar10_contents(root)
    root_dir = check_cifar10_dir(root)
    batches_dir = root_dir / BASE_FOLDER
    try:
        dataset = _CIFAR10Files(str(root_dir), train=True, download=False, transform=transform)
    except READ_ERRORS as exc:
        raise data_error(batches_dir, f"torchvision cannot load it ({type(exc).__name__}: {exc})") from exc
    # Wider integer pixels passed the range check above; PIL needs uint8 and targets should be ints.
    dataset.data = np.ascontiguousarray(dataset.data, dtype=np.uint8)
    dataset.targets = [int(t) for t in dataset.targets]
    return dataset


def _synthetic_arrays(num_images: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Learnable CIFAR-shaped images: a smooth colour pattern per class, plus noise and brightness."""

    rng = np.random.Generator(np.random.PCG64(seed))
    # A 5x5 grid of colours per class, linearly interpolated to 32x32 with integer weights (eighths),
    # so the patterns are exact integers on every machine whatever the float or BLAS library.
    grid = rng.integers(16, 153, size=(10, 5, 5, 3), dtype=np.int64)
    pos = np.arange(32)
    cell, frac = np.divmod(pos, 8)
    weights = np.zeros((32, 5), dtype=np.int64)
    weights[pos, cell] = 8 - frac
    weights[pos, cell + 1] = frac
    patterns = (np.einsum("hi,kijc,wj->khwc", weights, grid, weights) // 64).astype(np.uint8)

    labels = rng.permutation(np.arange(num_images) % 10)
    brightness = rng.integers(0, 41, size=(num_images, 1, 1, 1), dtype=np.uint8)
    data = np.empty((num_images, 32, 32, 3), dtype=np.uint8)
    # Pattern <= 152, noise <= 63 and brightness <= 40 sum to at most 255, so uint8 adds never wrap and
    # no clipping pass is needed. Chunks keep the noise buffer in cache; drawing full-range uint64s and
    # viewing them as little-endian bytes is ten times faster than drawing uint8s.
    chunk = 4096
    for start in range(0, num_images, chunk):
        out = data[start : start + chunk]
        np.take(patterns, labels[start : start + chunk], axis=0, out=out)
        words = rng.integers(0, 2**64, size=out.size // 8, dtype=np.uint64, endpoint=False)
        noise = words.astype("<u8", copy=False).view(np.uint8).reshape(out.shape) >> 2
        out += noise
        out += brightness[start : start + chunk]
    return data, labels.tolist()


class SyntheticCIFAR10(Dataset):
    """Deterministic CIFAR-shaped training set that behaves like torchvision's CIFAR10.

    `data` is uint8 (N, 32, 32, 3) HWC and `targets` a list of ints in 0..9, balanced; the same
    (num_images, seed) gives bit-identical data on every machine. Items are (transform(PIL image), target).
    """

    def __init__(self, num_images: int = 50_000, seed: int = 0, transform: Callable | None = None) -> None:
        if num_images < 1:
            raise ValueError(f"num_images must be at least 1, got {num_images}")
        self.num_images = num_images
        self.seed = seed
        self.data, self.targets = _synthetic_arrays(num_images, seed)
        self.classes = list(CIFAR10_CLASSES)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.transform = transform

    def __getitem__(self, index: int) -> tuple[Any, int]:
        # Same steps and cost as torchvision's CIFAR10, so loader benchmarks measure the same work.
        img = Image.fromarray(self.data[index])
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[index]

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"SyntheticCIFAR10(num_images={self.num_images}, seed={self.seed}, transform={self.transform!r})"


def training_set(data_dir: str | None, synthetic_images: int, seed: int) -> Dataset:
    """CIFAR-10 from `data_dir` (DataError when it is unusable), else the synthetic set of `synthetic_images`
    images drawn with `seed`, with the training transforms either way."""

    transform = train_transform()
    if data_dir is None:
        return SyntheticCIFAR10(synthetic_images, seed=seed, transform=transform)
    return load_cifar10(data_dir, transform=transform)


def train_transform() -> Callable:
    """The standard CIFAR-10 augmentation: pad-4 random crop, horizontal flip, tensor, normalize."""

    return transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    drop_last: bool = True,
    shuffle: bool = True,
    seed: int = 0,
    limit: int | None = None,
    sampler: Callable[[Dataset], Any] | None = None,
) -> DataLoader:
    """A DataLoader over `dataset` (or its first `limit` items), shuffled by a generator seeded by `seed`.

    `sampler` builds the index sampler for the (limited) dataset, e.g. a DistributedSampler giving each rank
    its own slice; it then owns shuffling.
    """

    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    # The generator also draws the workers' base seed, so worker-side augmentation repeats too.
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=None if sampler is None else sampler(dataset),
        num_workers=num_workers,
        pin_memory=pin_memory,
        # DataLoader raises if persistent_workers is set without workers.
        persistent_workers=persistent_workers and num_workers > 0,
        drop_last=drop_last,
        generator=generator,
    )


def _images_and_targets(dataset: Any) -> tuple[np.ndarray, list[int] | np.ndarray]:
    """The uint8 (N, 32, 32, 3) images and targets behind a CIFAR10-like dataset, through any Subsets."""

    indices = None
    while isinstance(dataset, Subset):
        outer = np.asarray(dataset.indices, dtype=np.int64)
        indices = outer if indices is None else outer[indices]
        dataset = dataset.dataset
    if not isinstance(dataset, (CIFAR10, SyntheticCIFAR10)):
        raise TypeError(
            "DeviceResidentLoader needs a torchvision CIFAR10 or a SyntheticCIFAR10 (or a Subset of one), "
            f"got {type(dataset).__name__}"
        )
    data = np.asarray(dataset.data)
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3) or data.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, 32, 32, 3), got {data.dtype} {data.shape}")
    targets = np.asarray(dataset.targets, dtype=np.int64)
    if indices is not None:
        data, targets = data[indices], targets[indices]
    return data, targets


class DeviceResidentLoader:
    """Reference loader with the data and the augmentation on the device.

    Holds the whole dataset as uint8 on `device` and yields shuffled (float32 NCHW, int64) batches of
    `batch_size` (the last partial batch is dropped), each image randomly cropped from its 4-pixel zero
    padding, randomly flipped, scaled to 0..1 and normalized with the CIFAR-10 mean and std. The dataset's
    own transform is ignored. Each epoch draws new crops, flips and order from a generator seeded with `seed`.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        device: torch.device | str,
        *,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:

        data, targets = _images_and_targets(dataset)
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit must be at least 1, got {limit}")
            data, targets = data[:limit], targets[:limit]
        if batch_size < 1 or batch_size > len(data):
            raise ValueError(f"batch_size must be in 1..{len(data)} (the images available), got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.num_batches = len(data) // batch_size
        self.num_images = self.num_batches * batch_size

        images = torch.from_numpy(data if data.flags.writeable else data.copy())  # read-only warns
        # Padded once, up front, so each crop is one gather with per-image offsets. Copying into a zeroed
        # tensor beats F.pad on the permuted view (4x on CPU); the permute to NCHW runs on the device.
        self.padded = torch.zeros((len(data), 3, 40, 40), dtype=torch.uint8, device=self.device)
        self.padded[:, :, 4:36, 4:36] = images.to(self.device).permute(0, 3, 1, 2)
        self.targets = torch.from_numpy(targets).to(self.device)
        mean = torch.tensor(CIFAR10_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD, device=self.device).view(1, 3, 1, 1)
        # x / 255 then (x - mean) / std, folded into one multiply-add.
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:

        n, g, dev = len(self.targets), self.generator, self.device
        # One draw per epoch for all images keeps the per-batch work to a gather and a multiply-add.
        order = torch.randperm(n, device=dev, generator=g)
        dy = torch.randint(0, 9, (n, 1), device=dev, generator=g)
        dx = torch.randint(0, 9, (n, 1), device=dev, generator=g)
        flip = torch.randint(0, 2, (n, 1), device=dev, generator=g).bool()
        step = torch.arange(32, device=dev)
        rows = dy + step
        cols = torch.where(flip, dx + 31 - step, dx + step)  # a flip reads the crop's columns backwards
        channels = torch.arange(3, device=dev).view(1, 3, 1, 1)
        for start in range(0, self.num_images, self.batch_size):
            stop = start + self.batch_size
            index = order[start:stop]
            batch = self.padded[
                index.view(-1, 1, 1, 1),
                channels,
                rows[start:stop, None, :, None],
                cols[start:stop, None, None, :],
            ]
            yield torch.addcmul(self.shift, batch.float(), self.scale), self.targets[index]
