"""Parsing and printing of counts: ``5M``, ``4.5e6``, ``500k`` and back."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from nas.errors import NasError

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}
_LIMIT_RE = re.compile(
    r"^\s*([+-]?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgb]?)\s*$", re.IGNORECASE
)


_AMOUNT_RE = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zµ]*)\s*$", re.IGNORECASE)


def _amount(
    text: Any,
    units: Mapping[str, float],
    what: str,
    example: str,
    pattern: re.Pattern[str] = _AMOUNT_RE,
) -> float:
    """A positive number with one of ``units``' suffixes, in the unit whose factor is 1
    (``pattern``: a number, then a suffix)."""
    if isinstance(text, bool):
        raise NasError(f"{what} must be a number such as {example}, not {text}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = pattern.match(str(text))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in units:
            raise NasError(f"cannot read {what} {text!r}: use a number such as {example}")
        value = float(match.group(1)) * units[unit]
    if not math.isfinite(value):
        raise NasError(f"{what} must be a finite number such as {example}, got {text!r}")
    if value <= 0:
        raise NasError(f"{what} must be positive, got {text!r}")
    return value


def parse_count(text: str | int | float, what: str = "limit") -> int:
    """Parse a positive count such as ``5M``, ``4.5e6``, ``500k`` or ``5000000``.

    Raises:
        NasError: for anything else, zero or negative values included.
    """
    value = _amount(text, _SUFFIX, what, "5M, 4.5e6, 500k or 5000000", _LIMIT_RE)
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


_DURATION = {"": 1.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "ns": 1e-6, "s": 1e3}
_BYTES: dict[str, float] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


class AtLeast(float):
    """A measured value known only as a lower bound: a candidate given up after its
    warm-up runs has at least its fastest warm-up run as its latency. Shown as ``≥7.87``
    wherever a rejection says why (it compares and stores as the float it is)."""


def parse_duration_ms(text: Any, what: str = "latency limit") -> float:
    """``2ms``, ``500us``, ``0.01s`` or a bare number of milliseconds -> milliseconds."""
    return _amount(text, _DURATION, what, "2ms, 500us or 0.01s")


def parse_bytes(text: Any, what: str = "memory limit") -> float:
    """``300MB`` (or ``300M``), ``1.5GB``, ``512MiB`` or a bare number of megabytes (the
    unit memory is shown in) -> bytes."""
    units = {**_BYTES, "": 10**6, "k": 10**3, "m": 10**6, "g": 10**9}
    return _amount(text, units, what, "300MB, 1.5GB or 512MiB")


def human_ms(ms: float) -> str:
    """Milliseconds as read: ``0.0421`` -> ``'0.0421'``, ``2.5`` -> ``'2.50'``, ``132`` ->
    ``'132'``."""
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3g}"


def human_bytes(n: float) -> str:
    """Bytes in decimal units: ``12_345_678`` -> ``'12.3 MB'``."""
    for suffix, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {suffix}"
    return f"{n:.0f} B"
