"""Data sets as whole uint8 tensors, one registry, decoded once and cached.

Every loader returns an :class:`ImageData`: all training and test images as one
(N, C, H, W) uint8 tensor each, which the trainers move to the device in one copy. The
torchvision data sets download into ``--data-dir``; ``imagefolder`` reads
``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` (or ``val/``). Decoded tensors are cached
under the cache folder, so the next study starts in seconds.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from platformdirs import user_cache_dir
from torch import Tensor

from nas.data.catalog import DATASETS, DatasetSpec, Loader
from nas.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CACHE_VERSION = 3  # 3: images that are not square are cropped to squares


@dataclass(frozen=True)
class ImageData:
    """A whole data set in memory.

    Attributes:
        name: data set name.
        train_x, test_x: uint8 images, (N, C, H, W).
        train_y, test_y: int64 labels, (N,).
        classes: class names, index = label.
        source: where it came from (a folder, or torchvision's name).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: tuple[str, ...]
    source: str

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_test(self) -> bool:
        return len(self.test_y) > 0

    def mean_std(self) -> tuple[Tensor, Tensor]:
        """Per-channel mean and standard deviation of all training images, in [0, 1] units.

        Exact over the whole training split (image folders are stored class by class, so any
        prefix would see only the first classes), accumulated in float64 chunks so that the
        memory it needs does not grow with the data set.
        """
        return channel_stats(self.train_x)


def data_record(data: ImageData) -> dict[str, Any]:
    """What a study keeps of its training images to know them again: their count, the
    classes, and a digest of the labels in file order (an image added, removed or moved to
    another class changes it; the pixels are left out, since two machines' JPEG decoders may
    differ). The test split is left out: the search never reads it, and one may be added
    after the search for ``nas train-winners``."""
    digest = hashlib.sha1(repr((data.classes, tuple(data.train_x.shape[1:]))).encode())
    digest.update(data.train_y.numpy().tobytes())
    return {
        "train": len(data.train_y),
        "classes": data.num_classes,
        "labels_sha1": digest.hexdigest()[:16],
    }


#: The key of a study's search record that keeps what its data holds (:func:`data_record`).
DATA_KEY = "data"


def check_same_data(recorded: Any, data: ImageData, study: str) -> dict[str, Any]:
    """Refuse to go on with data other than the study's first (``recorded``, its
    :func:`data_record`; None: a study of an earlier version, which records it when a search
    starts): new trials, or winners, would be scored on another split. Returns what the
    data holds now, for the record.

    Raises:
        DataError: naming what changed.
    """
    now = data_record(data)
    if not isinstance(recorded, dict) or recorded == now:
        return now

    def held(r: dict[str, Any]) -> str:
        return f"{r.get('train', 0):,} training images in {r.get('classes', 0)} classes"

    same = all(recorded.get(k) == now[k] for k in ("train", "classes"))
    raise DataError(
        f"study {study!r} was searched on {held(recorded)}; {data.source} now holds "
        + ("as many, with other labels" if same else held(now))
        + ": scores on them would not compare with its trials'; restore the images (or search "
        "them in a new --study)"
    )


def channel_stats(x: Tensor, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) standard deviation of uint8 images ``x`` (N, C, H, W),
    in [0, 1] units, as float32; the deviation is at least 1e-3 (constant images)."""
    channels = int(x.shape[1])
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].to(torch.float64)
        total += part.sum((0, 2, 3))
        squares += part.square().sum((0, 2, 3))
    n = max(1, int(x.numel() // max(1, channels)))
    mean = total / n
    var = (squares / n - mean.square()).clamp_min(0)
    return (mean / 255).float(), (var.sqrt() / 255).clamp_min(1e-3).float()


def default_data_dir() -> Path:
    """Where data sets are downloaded when ``--data-dir`` is not given."""
    return Path(os.environ.get("NAS_DATA_DIR") or Path(user_cache_dir("nas")) / "datasets")


def cache_dir() -> Path:
    """Where decoded tensors are cached (``NAS_CACHE_DIR`` overrides it)."""
    return Path(os.environ.get("NAS_CACHE_DIR") or Path(user_cache_dir("nas")) / "tensors")


def load_dataset(name: str, data_dir: str | Path | None = None) -> ImageData:
    """Load data set ``name`` (see :data:`DATASETS`) from ``data_dir``.

    Raises:
        DataError: with one sentence saying what is missing and which flag to use.
    """
    spec = DATASETS[name]
    if data_dir is None:
        if name == "imagefolder":
            raise DataError("--dataset imagefolder needs --data-dir DIR (DIR/train/<class>/*)")
        root = default_data_dir()
    else:
        root = Path(data_dir).expanduser()
        if root.exists() and not root.is_dir():
            raise DataError(f"data folder {root} (--data-dir) is a file, not a folder")
        if not root.is_dir():
            raise DataError(f"data folder {root} (--data-dir) does not exist")
    return spec.load(root)


# --------------------------------------------------------------------- tensor cache
def _cached(key: str, build: Callable[[], ImageData]) -> ImageData:
    path = cache_dir() / f"{key}.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            if blob.get("version") == CACHE_VERSION:
                return ImageData(
                    name=blob["name"],
                    train_x=blob["train_x"],
                    train_y=blob["train_y"],
                    test_x=blob["test_x"],
                    test_y=blob["test_y"],
                    classes=tuple(blob["classes"]),
                    source=blob["source"],
                )
        except Exception:  # a damaged cache file is rebuilt
            pass
    data = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(
            {
                "version": CACHE_VERSION,
                "name": data.name,
                "train_x": data.train_x,
                "train_y": data.train_y,
                "test_x": data.test_x,
                "test_y": data.test_y,
                "classes": list(data.classes),
                "source": data.source,
            },
            tmp,
        )
        tmp.replace(path)
    except OSError:  # caching is an optimisation; a read-only cache folder is fine
        pass
    return data


# --------------------------------------------------------------------- torchvision
def _torchvision_loader(name: str, cls_name: str) -> Loader:
    def load(root: Path) -> ImageData:
        key = f"{name}-" + hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
        return _cached(key, lambda: _load_torchvision(name, cls_name, root))

    return load


def _load_torchvision(name: str, cls_name: str, root: Path) -> ImageData:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(root=str(root), train=True, download=True)
        test = cls(root=str(root), train=False, download=True)
    except Exception as exc:  # URLError, RuntimeError, OSError, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"could not download {name} into {root} ({reason}); without internet, put the "
            f"files there, or use --dataset imagefolder --data-dir DIR with your own images"
        ) from None

    def tensors(ds: object) -> tuple[Tensor, Tensor]:
        data = ds.data  # type: ignore[attr-defined]
        x = torch.as_tensor(np.asarray(data))
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)  # type: ignore[attr-defined]
        return x.contiguous(), y

    train_x, train_y = tensors(train)
    test_x, test_y = tensors(test)
    return ImageData(
        name, train_x, train_y, test_x, test_y, tuple(train.classes), f"torchvision:{cls_name}"
    )


for _name, _cls, _desc in (
    ("cifar10", "CIFAR10", "CIFAR-10: 50k/10k 32x32 colour images, 10 classes (downloads)"),
    ("cifar100", "CIFAR100", "CIFAR-100: 50k/10k 32x32 colour images, 100 classes (downloads)"),
    ("mnist", "MNIST", "MNIST: 60k/10k 28x28 grey digits (downloads)"),
    ("fashion-mnist", "FashionMNIST", "Fashion-MNIST: 60k/10k 28x28 grey clothes (downloads)"),
):
    DATASETS.add(_name, DatasetSpec(_name, _desc, _torchvision_loader(_name, _cls), True))


# --------------------------------------------------------------------- image folders
def _list_split(folder: Path) -> list[tuple[Path, str]]:
    files = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append((f, class_dir.name))
    return files


def _load_imagefolder(root: Path) -> ImageData:
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(
            f"{root} has no train/ folder: imagefolder expects DIR/train/<class>/*.jpg "
            "and DIR/test/<class>/*.jpg (or val/)"
        )
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    train_files = _list_split(train_dir)
    if not train_files:
        raise DataError(f"no images found in {train_dir} (expected {train_dir}/<class>/*.jpg)")
    classes = tuple(sorted({c for _, c in train_files}))
    if len(classes) < 2:
        raise DataError(
            f"only one class ({classes[0]!r}) in {train_dir}: a classifier needs at least two"
        )
    test_files = _list_split(test_dir) if test_dir else []
    unknown = sorted({c for _, c in test_files} - set(classes))
    if unknown:
        raise DataError(f"{test_dir} has classes not in train/: {', '.join(unknown[:5])}")
    listing = hashlib.sha1()
    for f, _ in train_files + test_files:
        st = f.stat()
        listing.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key = f"imagefolder-{listing.hexdigest()[:16]}"
    return _cached(key, lambda: _decode_folder(root, train_files, test_files, classes))


def _probe_format(files: list[tuple[Path, str]], n: int = 64) -> tuple[tuple[int, int], bool]:
    """The most common image size and whether every image is grey, read from ``n`` files
    spread evenly over the whole (class-sorted) listing, so that every class has a say. Only
    the headers are read; every file is closed."""
    from PIL import Image

    step = max(1, len(files) // n)
    sizes: Counter[tuple[int, int]] = Counter()
    grey = True
    for f, _ in files[::step][:n]:
        try:
            with Image.open(f) as im:
                sizes[im.size] += 1
                grey = grey and im.mode in ("L", "1", "I;16", "I")
        except OSError as exc:
            raise DataError(f"cannot decode image {f}: {exc}") from None
    return sizes.most_common(1)[0][0], grey


def _decode_folder(
    root: Path,
    train_files: list[tuple[Path, str]],
    test_files: list[tuple[Path, str]],
    classes: tuple[str, ...],
) -> ImageData:
    from PIL import Image

    common, grey = _probe_format(train_files)
    side = min(common)  # networks are built for square inputs: the shorter side's square
    size = (side, side)
    mode = "L" if grey else "RGB"
    index = {c: i for i, c in enumerate(classes)}
    if common != size:
        print(
            f"note: the images of {root} are {common[0]}x{common[1]}; nas builds for square "
            f"inputs, so each is scaled to a shorter side of {side} and its centre "
            f"{side}x{side} kept",
            file=sys.stderr,
        )

    def decode(item: tuple[Path, str]) -> np.ndarray:
        try:
            with Image.open(item[0]) as opened:
                im = opened.convert(mode)
                if im.size != size:  # the shorter side to ``side``, then the centre square
                    w, h = im.size
                    scaled = (
                        max(side, round(w * side / min(w, h))),
                        max(side, round(h * side / min(w, h))),
                    )
                    im = im.resize(scaled, Image.Resampling.BILINEAR)
                    left, top = (scaled[0] - side) // 2, (scaled[1] - side) // 2
                    im = im.crop((left, top, left + side, top + side))
                arr = np.asarray(im, dtype=np.uint8)
        except OSError as exc:
            raise DataError(f"cannot decode image {item[0]}: {exc}") from None
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    def stack(files: list[tuple[Path, str]]) -> tuple[Tensor, Tensor]:
        channels = 1 if grey else 3
        if not files:
            return (
                torch.empty(0, channels, size[1], size[0], dtype=torch.uint8),
                torch.empty(0, dtype=torch.int64),
            )
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            arrays = list(pool.map(decode, files, chunksize=256))
        x = torch.from_numpy(np.stack(arrays))
        y = torch.tensor([index[c] for _, c in files], dtype=torch.int64)
        return x, y

    print(
        f"decoding {len(train_files) + len(test_files)} images from {root} (once; cached)",
        file=sys.stderr,
    )
    train_x, train_y = stack(train_files)
    test_x, test_y = stack(test_files)
    return ImageData("imagefolder", train_x, train_y, test_x, test_y, classes, str(root))


DATASETS.add(
    "imagefolder",
    DatasetSpec(
        "imagefolder",
        "your images: DIR/train/<class>/* and DIR/test/<class>/* (or val/)",
        _load_imagefolder,
        False,
    ),
)


# --------------------------------------------------------------------- fake
#: What a run on ``--dataset fake`` says once it has started (not before a refusal).
FAKE_WARNING = (
    "warning: --dataset fake is random data for smoke tests only; its accuracies mean nothing"
)


def _load_fake(root: Path) -> ImageData:
    """Random 3x32x32 images whose class shows in a colour shift: for smoke tests only (a
    run says so once it starts: :data:`FAKE_WARNING`)."""
    g = torch.Generator().manual_seed(0)

    def make(n: int) -> tuple[Tensor, Tensor]:
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.randint(0, 200, (n, 3, 32, 32), generator=g)
        shift = (torch.arange(10)[:, None] * torch.tensor([5, 11, 17])[None]) % 56
        x = x + shift[y][:, :, None, None]
        return x.to(torch.uint8), y

    train_x, train_y = make(2000)
    test_x, test_y = make(500)
    classes = tuple(f"class{i}" for i in range(10))
    return ImageData("fake", train_x, train_y, test_x, test_y, classes, "fake")


DATASETS.add("fake", DatasetSpec("fake", "random images for smoke tests only", _load_fake, False))
