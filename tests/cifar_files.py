"""Tiny CIFAR-10 files in torchvision's on-disk format, for tests that must not download anything."""

from __future__ import annotations

import pathlib
import pickle

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _dump(path: pathlib.Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: pathlib.Path, images_per_batch: int = 20, seed: int = 0) -> pathlib.Path:
    """Write data_batch_1..5, test_batch and batches.meta under root/cifar-10-batches-py; return root.

    Keys are str, not bytes: the real files are Python 2 pickles whose str keys load as str under
    torchvision's encoding="latin1", and torchvision indexes them as entry["data"] and entry["labels"].
    """
    batches_dir = pathlib.Path(root) / "cifar-10-batches-py"
    batches_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for number, name in enumerate(names, start=1):
        # Rows are one image each: 1024 red, then 1024 green, then 1024 blue values, row-major.
        data = rng.integers(0, 256, size=(images_per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(label) for label in rng.integers(0, 10, size=images_per_batch)]
        kind = "testing batch 1 of 1" if name == "test_batch" else f"training batch {number} of 5"
        _dump(
            batches_dir / name,
            {
                "batch_label": kind,
                "labels": labels,
                "data": data,
                "filenames": [f"image_{number}_{i:05d}.png" for i in range(images_per_batch)],
            },
        )
    _dump(
        batches_dir / "batches.meta",
        {"num_cases_per_batch": images_per_batch, "label_names": list(CLASSES), "num_vis": 3 * 32 * 32},
    )
    return pathlib.Path(root)
