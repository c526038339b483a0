"""Where CIFAR-10 lives on disk, checked with the standard library only (the plugin runs this at configure
time, and a pytest11 plugin must not import torch at import)."""

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
