"""Data: data sets as whole uint8 tensors, fixed splits, batch augmentation on the device."""

from __future__ import annotations

from nas.data.datasets import (
    DATASETS,
    ImageData,
    cache_dir,
    default_data_dir,
    load_dataset,
)
from nas.data.splits import Split, proxy_split, validation_split

__all__ = [
    "DATASETS",
    "ImageData",
    "Split",
    "cache_dir",
    "default_data_dir",
    "load_dataset",
    "proxy_split",
    "validation_split",
]
