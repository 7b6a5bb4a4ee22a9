"""The data sets there are, declared without importing torch (for ``--help`` and checks).

:mod:`nas.data.datasets` registers their loaders; it is imported on the first lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nas.registry import Registry

if TYPE_CHECKING:
    from nas.data.datasets import ImageData

Loader = Callable[[Path], "ImageData"]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: how to load it and what to tell the user about it."""

    name: str
    description: str
    load: Loader
    downloads: bool


DATASETS: Registry[DatasetSpec] = Registry(
    "data set",
    names=("cifar10", "cifar100", "mnist", "fashion-mnist", "imagefolder", "fake"),
    home="nas.data.datasets",
)
