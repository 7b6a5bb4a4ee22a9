from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.data import DATASETS, load_dataset, proxy_split, validation_split
from nas.data.augment import random_crop, random_flip
from nas.errors import DataError
from tests.conftest import make_image_folder


def test_registry_has_the_documented_data_sets() -> None:
    assert DATASETS.names() == [
        "cifar10",
        "cifar100",
        "mnist",
        "fashion-mnist",
        "imagefolder",
        "fake",
    ]


def test_image_folder_loads_as_uint8_tensors(image_folder: Path) -> None:
    data = load_dataset("imagefolder", image_folder)
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (120, 3, 16, 16)
    assert data.test_x.shape == (30, 3, 16, 16)
    assert data.classes == ("class0", "class1", "class2")
    assert sorted(data.train_y.unique().tolist()) == [0, 1, 2]


def test_decoded_tensors_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_image_folder(tmp_path / "imgs", classes=2, per_class=5, test_per_class=2)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    first = load_dataset("imagefolder", folder)
    assert list((tmp_path / "cache").glob("imagefolder-*.pt"))
    import nas.data.datasets as ds

    def boom(*args: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(ds, "_decode_folder", boom)
    second = load_dataset("imagefolder", folder)
    assert torch.equal(first.train_x, second.train_x)
    (folder / "train" / "class0" / "0.png").unlink()  # a changed folder is decoded again
    monkeypatch.undo()
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    assert len(load_dataset("imagefolder", folder).train_y) == 9


def test_missing_empty_and_one_class_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("imagefolder", tmp_path / "missing")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_dataset("imagefolder", tmp_path / "empty")
    with pytest.raises(DataError, match="has no train/ folder"):
        load_dataset("imagefolder", tmp_path / "empty" / "train")
    one = make_image_folder(tmp_path / "one", classes=1, per_class=3, test_per_class=1)
    with pytest.raises(DataError, match="only one class"):
        load_dataset("imagefolder", one)


def test_offline_download_says_which_flag_to_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    def offline(*args: object, **kwargs: object) -> None:
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", tmp_path)
    assert "could not download cifar10" in str(info.value)
    assert "--dataset imagefolder --data-dir DIR" in str(info.value)


def test_splits_are_fixed_disjoint_and_nested() -> None:
    a, b = validation_split(1000), validation_split(1000)
    assert torch.equal(a.val, b.val) and len(a.val) == 100
    assert not set(a.train.tolist()) & set(a.val.tolist())
    small, big = proxy_split(1000, 100, 50), proxy_split(1000, 300, 50)
    assert set(small.train.tolist()) <= set(big.train.tolist())
    assert torch.equal(small.val, big.val)


def test_batch_crop_and_flip_keep_pixels() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).reshape(2, 3, 8, 8).to(torch.uint8)
    g = torch.Generator().manual_seed(0)
    cropped = random_crop(x, 2, g)
    assert cropped.shape == x.shape
    # every crop is a shifted window of the zero-padded image
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        assert any(
            torch.equal(cropped[i], padded[i, :, dy : dy + 8, dx : dx + 8])
            for dy in range(5)
            for dx in range(5)
        )
    flipped = random_flip(x, g)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))
