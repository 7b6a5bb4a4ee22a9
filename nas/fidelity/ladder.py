"""Proxy fidelities as typed data: a rung is ``EPOCHSxIMAGES[:RECIPE]``, a ladder is rungs.

Light (no torch), so ``nas fidelity`` checks its ``--ladder`` before anything heavy loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nas.errors import NasError
from nas.training.recipe import DEFAULT_PROXY_RECIPE, PROXY_RECIPES

_RUNG = re.compile(r"^\s*(\d+)\s*x\s*(\d+|all)\s*(?::\s*([A-Za-z0-9_-]+)\s*)?$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Rung:
    """A proxy fidelity: ``epochs`` passes over ``subset`` training images (None: all),
    trained with the proxy recipe ``recipe`` (see :data:`nas.training.recipe.PROXY_RECIPES`)."""

    epochs: int
    subset: int | None
    recipe: str = DEFAULT_PROXY_RECIPE

    @property
    def label(self) -> str:
        size = f"{self.epochs}x{self.subset if self.subset is not None else 'all'}"
        return size if self.recipe == DEFAULT_PROXY_RECIPE else f"{size}:{self.recipe}"

    def images(self, available: int) -> int:
        """Training images seen, given ``available`` training images."""
        return self.epochs * min(self.subset or available, available)

    @classmethod
    def parse(cls, text: str) -> Rung:
        """``3x5000``, ``30xall`` or, with a proxy recipe, ``3x5000:fast``."""
        m = _RUNG.match(text)
        if not m:
            raise NasError(
                f"bad rung {text!r}: write EPOCHSxIMAGES[:RECIPE], e.g. 3x5000, 30xall or "
                "3x5000:fast"
            )
        images = m.group(2).lower()
        if int(m.group(1)) < 1:
            raise NasError(f"bad rung {text!r}: a rung trains at least 1 epoch")
        if images != "all" and int(images) < 2:
            raise NasError(f"bad rung {text!r}: a rung trains on at least 2 images")
        subset = None if images == "all" else int(images)
        recipe = m.group(3) or DEFAULT_PROXY_RECIPE
        if recipe not in PROXY_RECIPES:
            raise NasError(
                f"bad rung {text!r}: unknown proxy recipe {recipe!r}; valid: "
                f"{', '.join(PROXY_RECIPES)}"
            )
        return cls(int(m.group(1)), subset, recipe)


def parse_ladder(text: str) -> tuple[Rung, ...]:
    """``1x2000,3x5000,5x10000`` -> its rungs."""
    parts = text.split(",")
    if not text.strip():
        raise NasError("the ladder needs at least one rung, e.g. --ladder 1x2000,3x5000")
    if any(not part.strip() for part in parts):
        raise NasError(f"the ladder {text!r} has an empty rung (two commas, or one at an end)")
    rungs = tuple(Rung.parse(part) for part in parts)
    if len(set(rungs)) != len(rungs):
        raise NasError(f"the ladder {text!r} repeats a rung")
    return rungs
