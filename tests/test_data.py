"""Tests for trainperf.measurement.data: synthetic and on-disk CIFAR-10, the DataLoader factory, the device loader."""

from __future__ import annotations

import hashlib
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset, TensorDataset

import trainperf.measurement.data as data_mod
from cifar_files import CLASSES, write_cifar10
from trainperf.measurement.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataError,
    DeviceResidentLoader,
    SyntheticCIFAR10,
    check_cifar10_contents,
    check_cifar10_dir,
    load_cifar10,
    make_loader,
    train_transform,
)

MEAN = np.array(CIFAR10_MEAN).reshape(3, 1, 1)
STD = np.array(CIFAR10_STD).reshape(3, 1, 1)


def normalize(chw_uint8: np.ndarray) -> np.ndarray:
    """The reference ToTensor + Normalize, in float64 numpy."""
    return (chw_uint8 / 255.0 - MEAN) / STD


def raw_batch(root: pathlib.Path, name: str) -> dict:
    with open(root / "cifar-10-batches-py" / name, "rb") as f:
        return pickle.load(f, encoding="latin1")


def rewrite_batch(root: pathlib.Path, name: str, **changes: object) -> None:
    entry = raw_batch(root, name)
    entry.update(changes)
    with open(root / "cifar-10-batches-py" / name, "wb") as f:
        pickle.dump(entry, f, protocol=2)


@pytest.fixture
def cifar_root(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_cifar10(tmp_path / "data", images_per_batch=20, seed=3)


# --- SyntheticCIFAR10 ---------------------------------------------------------------------------


def test_synthetic_matches_cifar10_layout() -> None:
    ds = SyntheticCIFAR10(200, seed=1)
    assert isinstance(ds, Dataset)
    assert len(ds) == 200
    assert ds.data.shape == (200, 32, 32, 3)
    assert ds.data.dtype == np.uint8
    assert len(ds.targets) == 200
    assert all(type(t) is int and 0 <= t <= 9 for t in ds.targets)
    assert ds.classes == CLASSES
    assert ds.transform is None


def test_synthetic_is_deterministic() -> None:
    first, again, other = (
        SyntheticCIFAR10(300, seed=5),
        SyntheticCIFAR10(300, seed=5),
        SyntheticCIFAR10(300, seed=6),
    )
    assert np.array_equal(first.data, again.data)
    assert first.targets == again.targets
    assert not np.array_equal(first.data, other.data)
    assert first.targets != other.targets


def test_synthetic_data_is_pinned() -> None:
    # Baselines recorded on synthetic data are only comparable if every machine and release makes the same
    # bytes; a change here means old baselines were measured on different images.
    ds = SyntheticCIFAR10(100, seed=0)
    digest = hashlib.sha256(ds.data.tobytes())
    digest.update(bytes(ds.targets))
    assert digest.hexdigest() == "cfd6177608535a517b21666498382a2897549f841c8e32639c9843695620a4df"


def test_synthetic_labels_are_balanced_and_shuffled() -> None:
    targets = SyntheticCIFAR10(1000, seed=2).targets
    assert np.bincount(targets, minlength=10).tolist() == [100] * 10
    assert targets != [i % 10 for i in range(1000)]


def test_synthetic_uses_the_pixel_range() -> None:
    pixels = SyntheticCIFAR10(500, seed=0).data
    assert pixels.min() < 40
    assert pixels.max() > 215
    assert 90 < pixels.mean() < 170


def test_synthetic_item_is_an_rgb_pil_image_of_the_data() -> None:
    ds = SyntheticCIFAR10(20, seed=0)
    img, target = ds[7]
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB"
    assert img.size == (32, 32)
    assert np.array_equal(np.asarray(img), ds.data[7])
    assert target == ds.targets[7]


def test_synthetic_item_with_train_transform_is_a_normalized_tensor() -> None:
    ds = SyntheticCIFAR10(20, seed=0, transform=train_transform())
    img, target = ds[3]
    assert isinstance(img, torch.Tensor)
    assert img.shape == (3, 32, 32)
    assert img.dtype == torch.float32
    low = torch.tensor(normalize(np.zeros((3, 1, 1))), dtype=torch.float32)
    high = torch.tensor(normalize(np.full((3, 1, 1), 255)), dtype=torch.float32)
    assert torch.all(img >= low - 1e-5)
    assert torch.all(img <= high + 1e-5)
    assert target == ds.targets[3]


def test_synthetic_pickles_for_spawned_workers() -> None:
    ds = SyntheticCIFAR10(10, seed=4)
    copy = pickle.loads(pickle.dumps(ds))
    assert type(copy) is SyntheticCIFAR10
    assert np.array_equal(copy.data, ds.data)


def test_synthetic_rejects_an_empty_set() -> None:
    with pytest.raises(ValueError, match="num_images"):
        SyntheticCIFAR10(0)


def test_synthetic_images_are_learnable() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loader = DeviceResidentLoader(SyntheticCIFAR10(512, seed=0), 64, "cpu", seed=0)
    losses = []
    for _epoch in range(4):
        for images, targets in loader:
            loss = torch.nn.functional.cross_entropy(net(images), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert len(losses) == 32
    assert np.mean(losses[:3]) > 2.0
    assert np.mean(losses[-3:]) < min(1.0, 0.5 * np.mean(losses[:3]))


def test_importing_the_directory_check_loads_no_numpy_or_torch() -> None:
    # The plugin imports this module while pytest configures, for check_cifar10_dir.
    src = str(pathlib.Path(data_mod.__file__).parents[1])
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import trainperf.measurement.datadir as d\n"
        "d.check_cifar10_dir; d.DataError\n"
        "heavy = sorted({'numpy', 'torch', 'torchvision', 'PIL'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code, src], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --- check_cifar10_dir and load_cifar10 -------------------------------------------------------------


def test_write_cifar10_writes_the_files_torchvision_expects(cifar_root: pathlib.Path) -> None:
    names = {p.name for p in (cifar_root / "cifar-10-batches-py").iterdir()}
    assert names == {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
    entry = raw_batch(cifar_root, "data_batch_1")
    assert entry["data"].shape == (20, 3072)
    assert entry["data"].dtype == np.uint8
    assert len(entry["labels"]) == 20


def test_check_accepts_the_root_and_the_batches_dir(cifar_root: pathlib.Path) -> None:
    assert check_cifar10_dir(cifar_root) == cifar_root
    assert check_cifar10_dir(cifar_root / "cifar-10-batches-py") == cifar_root
    assert check_cifar10_dir(str(cifar_root)) == cifar_root


def test_check_rejects_a_missing_dir(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="does not exist") as info:
        check_cifar10_dir(missing)
    assert str(missing) in str(info.value)


def test_check_rejects_a_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        check_cifar10_dir(path)


def test_check_rejects_a_dir_without_the_batches_folder(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py") as info:
        check_cifar10_dir(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_check_names_every_missing_file(cifar_root: pathlib.Path) -> None:
    batches = cifar_root / "cifar-10-batches-py"
    (batches / "data_batch_3").unlink()
    (batches / "batches.meta").unlink()
    with pytest.raises(DataError) as info:
        check_cifar10_dir(cifar_root)
    message = str(info.value)
    assert str(batches) in message
    assert "missing data_batch_3, batches.meta" in message


def test_check_rejects_an_empty_file(cifar_root: pathlib.Path) -> None:
    (cifar_root / "cifar-10-batches-py" / "data_batch_5").write_bytes(b"")
    with pytest.raises(DataError, match="empty data_batch_5"):
        check_cifar10_dir(cifar_root)


def test_check_does_not_need_the_test_batch(cifar_root: pathlib.Path) -> None:
    (cifar_root / "cifar-10-batches-py" / "test_batch").unlink()
    assert check_cifar10_dir(cifar_root) == cifar_root
    assert len(load_cifar10(cifar_root)) == 100


@pytest.mark.parametrize("where", ["root", "batches"])
def test_load_round_trips_the_pixels_and_labels(cifar_root: pathlib.Path, where: str) -> None:
    ds = load_cifar10(cifar_root if where == "root" else cifar_root / "cifar-10-batches-py")
    assert len(ds) == 100
    assert ds.data.shape == (100, 32, 32, 3)
    assert ds.data.dtype == np.uint8
    assert ds.classes == CLASSES
    entry = raw_batch(cifar_root, "data_batch_3")
    # Item 5 of the third batch; the files hold CHW rows, the dataset HWC images.
    written = entry["data"][5].reshape(3, 32, 32).transpose(1, 2, 0)
    img, target = ds[40 + 5]
    assert np.array_equal(ds.data[45], written)
    assert np.array_equal(np.asarray(img), written)
    assert target == entry["labels"][5]
    assert all(type(t) is int for t in ds.targets)


def test_load_applies_the_transform(cifar_root: pathlib.Path) -> None:
    ds = load_cifar10(cifar_root, transform=train_transform())
    img, _target = ds[0]
    assert isinstance(img, torch.Tensor)
    assert img.shape == (3, 32, 32)


def test_load_accepts_wider_integer_pixels(cifar_root: pathlib.Path) -> None:
    entry = raw_batch(cifar_root, "data_batch_1")
    rewrite_batch(cifar_root, "data_batch_1", data=entry["data"].astype(np.int64))
    ds = load_cifar10(cifar_root)
    assert ds.data.dtype == np.uint8
    assert np.array_equal(ds.data[0], entry["data"][0].reshape(3, 32, 32).transpose(1, 2, 0))


def test_loaded_dataset_pickles(cifar_root: pathlib.Path) -> None:
    ds = load_cifar10(cifar_root)
    copy = pickle.loads(pickle.dumps(ds))
    assert type(copy) is type(ds)
    assert np.array_equal(copy.data, ds.data)


def test_the_content_check_counts_the_training_images(cifar_root: pathlib.Path) -> None:
    assert check_cifar10_contents(cifar_root) == len(load_cifar10(cifar_root))
    rewrite_batch(cifar_root, "data_batch_5", labels=[3] * 19)
    with pytest.raises(DataError, match="data_batch_5 has 20 images but labels of shape"):
        check_cifar10_contents(cifar_root)


def test_the_content_check_reads_unchanged_files_once(cifar_root: pathlib.Path, monkeypatch) -> None:
    # The plugin checks at collection and the dataset fixture again when it loads: the real set is 180 MB.
    import trainperf.measurement.datadir as datadir

    reads: list[str] = []
    real_unpickle = datadir.unpickle
    monkeypatch.setattr(datadir, "unpickle", lambda path: reads.append(path.name) or real_unpickle(path))
    images = check_cifar10_contents(cifar_root)
    assert len(reads) == 6
    assert check_cifar10_contents(cifar_root) == images and len(reads) == 6
    rewrite_batch(cifar_root, "data_batch_2", labels=[3] * 19)
    with pytest.raises(DataError, match="data_batch_2 has 20 images but labels of shape"):
        check_cifar10_contents(cifar_root)
    assert len(reads) > 6


def test_load_reports_a_missing_batch(cifar_root: pathlib.Path) -> None:
    batches = cifar_root / "cifar-10-batches-py"
    (batches / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3") as info:
        load_cifar10(cifar_root)
    assert str(batches) in str(info.value)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(lambda raw: b"\x00garbage" * 100, id="garbage"),
        pytest.param(lambda raw: b"not a pickle", id="text"),
    ],
)
def test_load_reports_an_unreadable_batch(cifar_root: pathlib.Path, damage) -> None:
    path = cifar_root / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError) as info:
        load_cifar10(cifar_root)
    message = str(info.value)
    assert str(cifar_root / "cifar-10-batches-py") in message
    assert "data_batch_2" in message
    assert "expected torchvision's cifar-10-batches-py format" in message
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        pytest.param({"data": np.zeros((20, 1024), np.uint8)}, "shape (20, 1024)", id="narrow"),
        # Wide rows still reshape to whole images in torchvision; only a per-file check catches them.
        pytest.param({"data": np.zeros((10, 6144), np.uint8)}, "shape (10, 6144)", id="wide"),
        pytest.param({"data": np.zeros((20, 3072), np.float32)}, "dtype float32", id="float"),
        pytest.param({"data": np.full((20, 3072), 256, np.int64)}, "outside 0..255", id="over-255"),
        pytest.param({"labels": list(range(19))}, "20 images but labels", id="too-few-labels"),
        pytest.param({"labels": [10] * 20}, "outside 0..9", id="label-10"),
        pytest.param({"labels": [-1] * 20}, "outside 0..9", id="label-negative"),
    ],
)
def test_load_reports_bad_content(cifar_root: pathlib.Path, changes: dict, problem: str) -> None:
    rewrite_batch(cifar_root, "data_batch_4", **changes)
    with pytest.raises(DataError, match="data_batch_4") as info:
        load_cifar10(cifar_root)
    assert problem in str(info.value)
    assert str(cifar_root / "cifar-10-batches-py") in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [({"labels": [0]}, "no 'data' entry"), ({"data": np.zeros((1, 3072), np.uint8)}, "no 'labels' entry")],
)
def test_load_reports_missing_keys(cifar_root: pathlib.Path, content: dict, problem: str) -> None:
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(DataError, match=problem):
        load_cifar10(cifar_root)


def test_load_reports_a_batch_that_is_not_a_dict(cifar_root: pathlib.Path) -> None:
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DataError, match="data_batch_1 holds a list"):
        load_cifar10(cifar_root)


def test_load_reports_bad_metadata(cifar_root: pathlib.Path) -> None:
    with open(cifar_root / "cifar-10-batches-py" / "batches.meta", "wb") as f:
        pickle.dump({"num_vis": 3072}, f)
    with pytest.raises(DataError, match=r"batches\.meta must hold 'label_names'") as info:
        load_cifar10(cifar_root)
    assert str(cifar_root / "cifar-10-batches-py") in str(info.value)


# --- make_loader -------------------------------------------------------------------------------------


def indices_dataset(n: int) -> TensorDataset:
    return TensorDataset(torch.arange(n))


def epoch_order(loader) -> list[int]:
    return [int(i) for (batch,) in loader for i in batch]


def test_make_loader_batches_transformed_images() -> None:
    loader = make_loader(SyntheticCIFAR10(100, transform=train_transform()), 32)
    batches = list(loader)
    assert len(batches) == 3
    images, targets = batches[0]
    assert images.shape == (32, 3, 32, 32)
    assert images.dtype == torch.float32
    assert targets.shape == (32,)
    assert targets.dtype == torch.int64


def test_make_loader_drop_last() -> None:
    assert [len(b) for (b,) in make_loader(indices_dataset(100), 32)] == [32, 32, 32]
    assert [len(b) for (b,) in make_loader(indices_dataset(100), 32, drop_last=False)] == [32, 32, 32, 4]


def test_make_loader_limit_takes_the_first_items() -> None:
    loader = make_loader(indices_dataset(100), 10, limit=50)
    assert len(loader) == 5
    assert sorted(epoch_order(loader)) == list(range(50))
    assert len(make_loader(indices_dataset(100), 10, limit=1000)) == 10
    with pytest.raises(ValueError, match="limit"):
        make_loader(indices_dataset(100), 10, limit=0)


def test_make_loader_shuffle_is_seeded() -> None:
    first = epoch_order(make_loader(indices_dataset(64), 8, seed=1))
    again = epoch_order(make_loader(indices_dataset(64), 8, seed=1))
    other = epoch_order(make_loader(indices_dataset(64), 8, seed=2))
    assert first == again
    assert first != other
    assert first != list(range(64))
    assert sorted(first) == list(range(64))
    assert epoch_order(make_loader(indices_dataset(64), 8, shuffle=False)) == list(range(64))


def test_make_loader_only_keeps_workers_when_there_are_some() -> None:
    assert make_loader(indices_dataset(8), 4, persistent_workers=True).persistent_workers is False
    with_workers = make_loader(indices_dataset(8), 4, num_workers=2, persistent_workers=True)
    assert with_workers.persistent_workers is True
    assert with_workers.num_workers == 2


# --- DeviceResidentLoader ----------------------------------------------------------------------------


def indexed_synthetic(n: int) -> SyntheticCIFAR10:
    """Synthetic images whose target is their own index, so each yielded image can be traced to its source."""
    ds = SyntheticCIFAR10(n, seed=9)
    ds.targets = list(range(n))
    return ds


def find_augmentation(out: np.ndarray, source_hwc: np.ndarray) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flipped) for which `out` is the normalized crop of the 4-padded source."""
    padded = np.pad(source_hwc.transpose(2, 0, 1), ((0, 0), (4, 4), (4, 4)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (32, 32), axis=(1, 2))  # (3, 9, 9, 32, 32)
    windows = normalize(windows.transpose(1, 2, 0, 3, 4).reshape(81, 3, 32, 32))
    found = []
    for flipped, candidates in ((False, windows), (True, windows[..., ::-1])):
        close = np.all(np.abs(candidates - out) < 1e-4, axis=(1, 2, 3))
        found += [(int(k) // 9, int(k) % 9, flipped) for k in np.flatnonzero(close)]
    return found


def torchvision_augmentation(img: Image.Image, dy: int, dx: int, flipped: bool) -> torch.Tensor:
    """What train_transform yields for these crop offsets and flip, via torchvision's functional ops."""
    from torchvision.transforms import functional as F

    img = F.crop(F.pad(img, 4), dy, dx, 32, 32)
    if flipped:
        img = F.hflip(img)
    return F.normalize(F.to_tensor(img), CIFAR10_MEAN, CIFAR10_STD)


def test_device_loader_shapes_and_counts() -> None:
    loader = DeviceResidentLoader(indexed_synthetic(1000), 128, "cpu")
    assert len(loader) == 7
    assert loader.num_images == 896
    batches = list(loader)
    assert len(batches) == 7
    for images, targets in batches:
        assert images.shape == (128, 3, 32, 32)
        assert images.dtype == torch.float32
        assert images.device.type == "cpu"
        assert targets.shape == (128,)
        assert targets.dtype == torch.int64
    seen = torch.cat([t for _, t in batches])
    assert len(set(seen.tolist())) == 896  # a shuffled epoch without repeats
    assert seen.tolist() != sorted(seen.tolist())


def test_device_loader_normalizes() -> None:
    images, _ = next(iter(DeviceResidentLoader(SyntheticCIFAR10(512), 256, "cpu")))
    assert abs(images.mean().item()) < 0.5
    assert 0.5 < images.std().item() < 1.5


def test_device_loader_yields_true_crops_and_flips() -> None:
    ds = indexed_synthetic(64)
    loader = DeviceResidentLoader(ds, 32, "cpu", seed=0)
    draws = []
    for epoch in range(3):
        for images, targets in loader:
            for out, index in zip(images, targets.tolist(), strict=True):
                found = find_augmentation(out.numpy(), ds.data[index])
                assert len(found) == 1, f"image {index} is not one crop/flip of its source: {found}"
                if epoch == 0:
                    expected = torchvision_augmentation(ds[index][0], *found[0])
                    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
                draws += found
    dys, dxs, flips = zip(*draws, strict=True)
    assert set(dys) == set(range(9))
    assert set(dxs) == set(range(9))
    assert 0.3 < np.mean(flips) < 0.7


def test_device_loader_is_seeded_and_varies_by_epoch() -> None:
    ds = SyntheticCIFAR10(256)
    first, again = DeviceResidentLoader(ds, 64, "cpu", seed=3), DeviceResidentLoader(ds, 64, "cpu", seed=3)
    other = DeviceResidentLoader(ds, 64, "cpu", seed=4)
    a, b, c = next(iter(first)), next(iter(again)), next(iter(other))
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(next(iter(first))[0], a[0])  # the next epoch draws anew


def test_device_loader_unwraps_subsets_and_limits() -> None:
    ds = indexed_synthetic(100)
    inner = Subset(ds, list(range(50, 100)))
    nested = Subset(inner, [1, 3, 5, 7, 9, 11, 13, 15])  # ds items 51, 53, ..., 65
    seen = torch.cat([t for _, t in DeviceResidentLoader(nested, 4, "cpu")]).tolist()
    assert sorted(seen) == list(range(51, 66, 2))
    limited = torch.cat([t for _, t in DeviceResidentLoader(nested, 2, "cpu", limit=4)]).tolist()
    assert sorted(limited) == [51, 53, 55, 57]


def test_device_loader_takes_a_loaded_cifar10(cifar_root: pathlib.Path) -> None:
    loader = DeviceResidentLoader(load_cifar10(cifar_root, transform=train_transform()), 16, "cpu")
    assert len(loader) == 6
    images, targets = next(iter(loader))
    assert images.shape == (16, 3, 32, 32)
    assert int(targets.max()) <= 9


@pytest.mark.parametrize("dataset", [TensorDataset(torch.zeros(4, 3, 32, 32)), [(0, 0)] * 4])
def test_device_loader_rejects_other_datasets(dataset: object) -> None:
    with pytest.raises(TypeError, match="CIFAR10"):
        DeviceResidentLoader(dataset, 2, "cpu")


def test_device_loader_rejects_batches_larger_than_the_data() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        DeviceResidentLoader(SyntheticCIFAR10(10), 11, "cpu")
