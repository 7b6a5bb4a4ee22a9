"""Data: data sets as whole uint8 tensors, fixed splits, batch augmentation on the device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_exports

if TYPE_CHECKING:
    from nas.data.catalog import DATASETS
    from nas.data.datasets import ImageData, cache_dir, default_data_dir, load_dataset
    from nas.data.splits import Split, proxy_split, split_sizes, validation_split

__all__ = [
    "DATASETS",
    "ImageData",
    "Split",
    "cache_dir",
    "default_data_dir",
    "load_dataset",
    "proxy_split",
    "split_sizes",
    "validation_split",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "DATASETS": "nas.data.catalog",
        "ImageData": "nas.data.datasets",
        "cache_dir": "nas.data.datasets",
        "default_data_dir": "nas.data.datasets",
        "load_dataset": "nas.data.datasets",
        "Split": "nas.data.splits",
        "proxy_split": "nas.data.splits",
        "split_sizes": "nas.data.splits",
        "validation_split": "nas.data.splits",
    },
)
