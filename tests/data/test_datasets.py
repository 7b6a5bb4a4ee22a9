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


def _offsets(cropped: torch.Tensor, x: torch.Tensor, padding: int) -> list[tuple[int, int]]:
    """The (dy, dx) window of the zero-padded image each crop is; fails if it is none."""
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    h, w = x.shape[-2:]
    found = []
    for i in range(len(x)):
        hits = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if torch.equal(cropped[i], padded[i, :, dy : dy + h, dx : dx + w])
        ]
        assert hits, f"crop {i} is not a window of its padded image"
        found.append(hits[0])
    return found


def test_crops_are_windows_and_their_offsets_vary_within_a_batch() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (256, 3, 8, 8), generator=g, dtype=torch.int64).to(torch.uint8)
    offsets = _offsets(random_crop(x, 2, g), x, 2)
    assert len(set(offsets)) >= 20  # 25 possible offsets over 256 images
    assert len({dy for dy, _ in offsets}) == 5 and len({dx for _, dx in offsets}) == 5


def test_flips_flip_about_half_of_a_batch() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (256, 3, 8, 8), generator=g, dtype=torch.int64).to(torch.uint8)
    out = random_flip(x, g)
    same = [torch.equal(out[i], x[i]) for i in range(256)]
    mirrored = [torch.equal(out[i], x[i].flip(2)) for i in range(256)]
    assert all(a or b for a, b in zip(same, mirrored, strict=True))
    assert 90 <= sum(mirrored) <= 166  # binomial(256, 1/2): outside this is p < 1e-5


def test_mean_std_are_the_whole_training_splits() -> None:
    """30,000 images stored class by class (as an image folder decodes them), three classes
    of very different colours: the statistics are those of all of them, not of a prefix."""
    from nas.data import ImageData

    g = torch.Generator().manual_seed(1)
    parts = [
        (torch.randn(10_000, 3, 4, 4, generator=g) * 20 + torch.tensor(colour)[:, None, None])
        .clamp(0, 255)
        .to(torch.uint8)
        for colour in ((20.0, 30.0, 40.0), (120.0, 110.0, 100.0), (230.0, 200.0, 250.0))
    ]
    x = torch.cat(parts)
    y = torch.arange(3).repeat_interleave(10_000)
    data = ImageData("sorted", x, y, x[:0], y[:0], ("a", "b", "c"), "test")
    mean, std = data.mean_std()
    whole = x.double() / 255
    assert torch.allclose(mean.double(), whole.mean((0, 2, 3)), atol=0.005)
    assert torch.allclose(std.double(), whole.std((0, 2, 3)), atol=0.005)
    assert (whole[:10_000].mean((0, 2, 3)) - whole.mean((0, 2, 3))).abs().max() > 0.2


def test_image_format_is_read_from_every_class(tmp_path: Path) -> None:
    """The first class is grey and small, the others colour and larger: the data set is
    colour at the common size (a probe of the first files only would make it grey)."""
    from PIL import Image

    for c, (mode, size) in enumerate((("L", 8), ("RGB", 12), ("RGB", 12))):
        folder = tmp_path / "mixed" / "train" / f"c{c}"
        folder.mkdir(parents=True)
        for i in range(70):
            Image.new(mode, (size, size), color=40 * c if mode == "L" else (40 * c, 9, 9)).save(
                folder / f"{i}.png"
            )
    data = load_dataset("imagefolder", tmp_path / "mixed")
    assert data.in_channels == 3 and data.input_size == 12


def test_images_that_are_not_square_are_cropped_to_the_centre_square(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Networks are built for square inputs: 24x16 images (width x height) are loaded as
    their centre 16x16, not as 16 rows of 24 that every count would take for 16x16; the
    one 48x32 image among them is scaled to a shorter side of 16 first."""
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    for c in range(2):
        folder = tmp_path / "wide" / "train" / f"c{c}"
        folder.mkdir(parents=True)
        for i in range(6):
            img = np.zeros((16, 24, 3), dtype=np.uint8)  # rows, columns
            img[:, 4:20] = 200 + 10 * c  # the centre 16 columns bright, 4 dark on each side
            Image.fromarray(img).save(folder / f"{i}.png")
    big = np.zeros((32, 48, 3), dtype=np.uint8)
    big[:, 8:40] = 200
    Image.fromarray(big).save(tmp_path / "wide" / "train" / "c0" / "big.png")
    data = load_dataset("imagefolder", tmp_path / "wide")
    assert data.train_x.shape == (13, 3, 16, 16) and data.input_size == 16
    small = torch.cat([data.train_x[:6], data.train_x[7:]])  # c0's big.png is 7th
    assert int(small.min()) >= 200  # only the bright centre is kept
    assert int(data.train_x[6, :, :, 2:14].min()) == 200  # scaled, then its centre kept
    assert "are 24x16; nas builds for square inputs" in capsys.readouterr().err
