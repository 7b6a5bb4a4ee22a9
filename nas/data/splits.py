"""Fixed splits: the validation images the search scores on and the proxy's training subset.

The validation split is carved from the training images with a fixed seed, the same for
every study and every ``--seed``, so scores are comparable; the test split is never used by
the search (only ``nas train-winners`` touches it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nas.errors import DataError, NasError
from nas.units import plural

#: Seed of the permutation the splits are cut from (fixed: never the study's seed).
SPLIT_SEED = 20_240_601


@dataclass(frozen=True)
class Split:
    """Indices into the training images: what to train on and what to score on."""

    train: Tensor
    val: Tensor


def split_sizes(n_train: int, val_fraction: float = 0.1) -> tuple[int, int]:
    """How many of ``n_train`` training images :func:`validation_split` leaves to train on
    and holds out for validation: ``(train, val)``."""
    if not 0 < val_fraction < 1:
        raise DataError(f"the validation fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, round(n_train * val_fraction))
    if n_train - n_val < 1:
        raise DataError(f"{n_train} training images are too few to hold out a validation split")
    return n_train - n_val, n_val


#: Fewer training images than this are refused for a search.
MIN_SEARCH_IMAGES = 10


def split_room(n_train: int, val_fraction: float = 0.1) -> dict[str, tuple[int, str]]:
    """What a search's proxy may take from ``n_train`` training images: under ``"train"``
    the images outside the validation split, under ``"val"`` the validation split, each with
    that said in words (what :meth:`nas.settings.Resolved.fit` fits the proxy's counts to).

    Raises:
        NasError: for fewer than :data:`MIN_SEARCH_IMAGES` training images.
    """
    if n_train < MIN_SEARCH_IMAGES:
        raise NasError(f"{n_train} training images are too few to search on")
    train, val = split_sizes(n_train, val_fraction)
    return {
        "train": (
            train,
            f"this data set has {plural(train, 'training image')} outside its validation split",
        ),
        "val": (val, f"the validation split of this data set holds {plural(val, 'image')}"),
    }


def validation_split(n_train: int, val_fraction: float = 0.1) -> Split:
    """Hold out ``val_fraction`` of ``n_train`` training images (at least one) for validation."""
    _, n_val = split_sizes(n_train, val_fraction)
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(SPLIT_SEED))
    return Split(train=perm[n_val:], val=perm[:n_val])


def proxy_split(
    n_train: int, subset: int | None, val_size: int | None, val_fraction: float = 0.1
) -> Split:
    """The proxy's split: ``subset`` training images and ``val_size`` validation images.

    Both are prefixes of the fixed permutations, so a larger subset contains a smaller one.
    """
    full = validation_split(n_train, val_fraction)
    train = full.train if subset is None else full.train[: max(1, subset)]
    val = full.val if val_size is None else full.val[: max(1, val_size)]
    return Split(train=train, val=val)
