"""Parsing and printing of counts: ``5M``, ``4.5e6``, ``500k`` and back."""

from __future__ import annotations

import math
import re

from nas.errors import NasError

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_LIMIT_RE = re.compile(
    r"^\s*([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgb]?)\s*$", re.IGNORECASE
)


def parse_count(text: str | int | float, what: str = "limit") -> int:
    """Parse a positive count such as ``5M``, ``4.5e6``, ``500k`` or ``5000000``.

    Raises:
        NasError: for anything else, zero or negative values included.
    """
    if isinstance(text, bool):
        raise NasError(f"{what} must be a number such as 5M, 4.5e6, 500k or 5000000, not {text}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _LIMIT_RE.match(text)
        if match is None:
            raise NasError(
                f"cannot read {what} {text!r}: use a number such as 5M, 4.5e6, 500k or 5000000"
            )
        value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise NasError(f"{what} must be positive, got {text!r}")
    if round(value) < 1:
        raise NasError(f"{what} must be at least 1, got {text!r}")
    return round(value)


def human(n: float, digits: int = 2) -> str:
    """Format a count with a k/M/G suffix: ``4913705`` -> ``'4.91M'``."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{suffix}"
    return f"{n:.0f}"


def over_limit(value: float, limit: float, what: str) -> str:
    """Why a candidate is rejected, the same in a search and in ``nas sample``:
    ``over_limit(6_100_000, 5_000_000, "params")`` -> ``'6.10M params > limit 5.00M'``."""
    return f"{human(value)} {what} > limit {human(limit)}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 trial``, ``2 trials`` (``many`` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"
