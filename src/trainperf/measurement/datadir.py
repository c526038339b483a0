"""Where CIFAR-10 lives on disk and whether its files are usable, checked before any benchmark runs.

The plugin runs these checks while pytest configures, and a pytest11 plugin must not import torch: the module
imports the standard library only, and the content check imports NumPy (the pickles hold NumPy arrays) when called.
"""

from __future__ import annotations

import os
import pathlib
import pickle
from typing import Any

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
META_FILE = "batches.meta"
EXPECTED = "expected torchvision's cifar-10-batches-py format"
PIXELS = 3 * 32 * 32
CLASSES = 10

# What unpickling a damaged or foreign file can raise; anything else is a bug worth a traceback.
READ_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ImportError,
    RuntimeError,
)


class DataError(Exception):
    """Bad dataset input; message names the path and what was expected."""


def data_error(batches_dir: pathlib.Path, problem: str) -> DataError:
    return DataError(f"CIFAR-10 data in {batches_dir}: {problem}; {EXPECTED}")


def check_cifar10_dir(root: str | os.PathLike[str]) -> pathlib.Path:
    """Check that `root` holds the CIFAR-10 training files, using the standard library only.

    Accepts torchvision's `root` (the directory containing cifar-10-batches-py) or that directory itself.
    Returns the torchvision root; raises DataError naming the path and the missing files.
    """
    path = pathlib.Path(root).expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise DataError(f"CIFAR-10 directory {path} {what}; {EXPECTED}")
    if (path / BASE_FOLDER).is_dir():
        root_dir, batches_dir = path, path / BASE_FOLDER
    elif path.name == BASE_FOLDER:
        root_dir, batches_dir = path.parent, path
    else:
        raise DataError(f"CIFAR-10 directory {path} has no {BASE_FOLDER}/ subdirectory; {EXPECTED}")
    missing = [name for name in (*TRAIN_FILES, META_FILE) if not (batches_dir / name).is_file()]
    if missing:
        raise data_error(batches_dir, f"missing {', '.join(missing)}")
    empty = [name for name in (*TRAIN_FILES, META_FILE) if (batches_dir / name).stat().st_size == 0]
    if empty:
        raise data_error(batches_dir, f"empty {', '.join(empty)}")
    return root_dir


def unpickle(path: pathlib.Path) -> Any:
    # latin1 is how torchvision reads the Python 2 pickles the CIFAR-10 archive ships.
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _batch_problem(name: str, entry: Any) -> str | None:
    """What is wrong with one unpickled data batch, or None when torchvision can use it."""
    import numpy as np

    if not isinstance(entry, dict):
        return f"{name} holds a {type(entry).__name__}, not a dict"
    if "data" not in entry:
        return f"{name} has no 'data' entry"
    labels = entry.get("labels", entry.get("fine_labels"))
    if labels is None:
        return f"{name} has no 'labels' entry"
    data = np.asarray(entry["data"])
    if data.ndim != 2 or data.shape[1] != PIXELS:
        return f"{name} 'data' has shape {data.shape}, not (N, {PIXELS})"
    if not np.issubdtype(data.dtype, np.integer):
        return f"{name} 'data' has dtype {data.dtype}, not uint8"
    if data.size and (int(data.min()) < 0 or int(data.max()) > 255):
        return f"{name} 'data' has values outside 0..255"
    labels = np.asarray(labels)
    if labels.shape != (len(data),):
        return f"{name} has {len(data)} images but labels of shape {labels.shape}"
    if labels.size and (
        not np.issubdtype(labels.dtype, np.integer) or int(labels.min()) < 0 or int(labels.max()) >= CLASSES
    ):
        return f"{name} has labels outside 0..{CLASSES - 1}"
    return None


def check_cifar10_contents(root: str | os.PathLike[str]) -> int:
    """Check every training batch of the CIFAR-10 directory ``root`` for what torchvision needs; returns how many
    training images it holds.

    Each batch must unpickle to (N, 3072) pixels in 0..255 with N labels in 0..9, and the metadata must name
    the 10 classes. Batches are checked file by file, because
    torchvision stacks the batches before anyone can look (a batch of the wrong width can still reshape to
    whole images, and a bad file would go unnamed). Raises DataError naming the directory and the file.
    """
    batches_dir = check_cifar10_dir(root) / BASE_FOLDER
    key = _files_key(batches_dir)
    if key in _CHECKED:  # checked at collection; the dataset fixture asks again in the same session
        return _CHECKED[key]
    images = 0
    for name in TRAIN_FILES:
        try:
            entry = unpickle(batches_dir / name)
            problem = _batch_problem(name, entry)
        except READ_ERRORS as exc:
            raise data_error(batches_dir, f"cannot read {name} ({type(exc).__name__}: {exc})") from exc
        if problem:
            raise data_error(batches_dir, problem)
        images += len(entry["data"])
    try:
        meta = unpickle(batches_dir / META_FILE)
    except READ_ERRORS as exc:
        raise data_error(batches_dir, f"cannot read {META_FILE} ({type(exc).__name__}: {exc})") from exc
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != CLASSES:
        raise data_error(batches_dir, f"{META_FILE} must hold 'label_names', a list of {CLASSES} class names")
    _CHECKED[key] = images
    return images


# Directories whose files passed check_cifar10_contents, by path and each file's inode, size and modification
# time: a file rewritten or replaced since is read again.
_CHECKED: dict[tuple[object, ...], int] = {}


def _files_key(batches_dir: pathlib.Path) -> tuple[object, ...]:
    stats = [(name, (batches_dir / name).stat()) for name in (*TRAIN_FILES, META_FILE)]
    return (str(batches_dir.resolve()), *((name, st.st_ino, st.st_size, st.st_mtime_ns) for name, st in stats))
