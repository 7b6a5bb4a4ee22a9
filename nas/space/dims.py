"""One searchable dimension of a space: a fixed value, a list of choices, or a range.

In a space file a dimension is written as

* a scalar (``extra_conv = 1``): fixed, not searched;
* a list (``block = ["basic", "bottleneck"]``): ``trial.suggest_categorical``;
* a table (``width = { low = 16, high = 1024, log = true }``, optional ``step``):
  ``trial.suggest_int`` when both bounds are integers, else ``trial.suggest_float``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

Scalar = bool | int | float | str


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse ``True`` with ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


class Dim(Protocol):
    """What every dimension can do."""

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        """Sample (or return) a value, recording it in ``trial`` under ``name``."""
        ...

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a point of this dimension."""
        ...

    def values(self) -> list[Any]:
        """Representative values: all choices, or both ends of a range (for validation)."""
        ...

    @property
    def searched(self) -> bool:
        """Whether sampling records an Optuna parameter (false for fixed values)."""
        ...

    def describe(self) -> str:
        """Short human form, e.g. ``16..1024 (log)``."""
        ...


@dataclass(frozen=True)
class Fixed:
    """A value that is not searched."""

    value: Scalar

    @property
    def searched(self) -> bool:
        return False

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        return self.value

    def contains(self, value: Any) -> bool:
        return _same(value, self.value)

    def values(self) -> list[Any]:
        return [self.value]

    def describe(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Choice:
    """One of a list of values."""

    choices: tuple[Scalar, ...]

    @property
    def searched(self) -> bool:
        return len(self.choices) > 1

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        if len(self.choices) == 1:
            return self.choices[0]
        return trial.suggest_categorical(name, list(self.choices))

    def contains(self, value: Any) -> bool:
        return any(_same(value, c) for c in self.choices)

    def values(self) -> list[Any]:
        return list(self.choices)

    def describe(self) -> str:
        return ", ".join(map(str, self.choices))

    def twice(self) -> Scalar | None:
        """A choice listed twice (drawn twice as often as the others), or None."""
        seen = self.choices
        return next((v for i, v in enumerate(seen) if any(_same(v, w) for w in seen[:i])), None)


class _Range:
    """What the integer and float ranges share: a range whose ends meet is not searched."""

    low: float
    high: float

    @property
    def searched(self) -> bool:
        return self.low != self.high

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        if self.low == self.high:
            return self.low
        return self._suggest(trial, name)

    def _suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        """Sample a value of a searched range (``low < high``)."""
        raise NotImplementedError

    def values(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True)
class IntRange(_Range):
    """An integer in [low, high] (inclusive), optionally on a log scale or a step grid."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def _suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def describe(self) -> str:
        extra = " (log)" if self.log else (f" step {self.step}" if self.step != 1 else "")
        return f"{self.low}..{self.high}{extra}"

    def drawn(self, most: int = 4096) -> list[int]:
        """Every value it may draw, or its two ends when it may draw more than ``most``."""
        if (self.high - self.low) // self.step >= most:
            return [self.low, self.high]
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class FloatRange(_Range):
    """A float in [low, high], optionally on a log scale or a step grid."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def _suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        k = (value - self.low) / self.step
        return math.isclose(k, round(k), abs_tol=1e-9)

    def describe(self) -> str:
        extra = " (log)" if self.log else (f" step {self.step}" if self.step else "")
        return f"{self.low}..{self.high}{extra}"


def _divides(step: float, span: float) -> bool:
    """Whether ``span`` is a whole number of ``step``s (floats: up to rounding)."""
    k = span / step
    return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


def parse_dim(raw: Any, where: str, errors: list[str]) -> Dim | None:  # noqa: C901 (one branch per value form of a space file (fixed, list, range))
    """Parse a dimension written in a space file; append a message to ``errors`` if malformed."""
    if isinstance(raw, list):
        if not raw:
            errors.append(f"{where}: the choice list is empty")
            return None
        if any(isinstance(v, dict | list) for v in raw):
            errors.append(f"{where}: choices must be plain values, got {raw!r}")
            return None
        return Choice(tuple(raw))
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"low", "high", "step", "log"})
        if unknown:
            errors.append(
                f"{where}: unknown range key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; a range takes low, high, step, log"
            )
            return None
        if "low" not in raw or "high" not in raw:
            errors.append(f"{where}: a range needs both 'low' and 'high'")
            return None
        low, high = raw["low"], raw["high"]
        step, log = raw.get("step"), raw.get("log", False)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            errors.append(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
            return None
        if not isinstance(log, bool):
            errors.append(f"{where}: log must be true or false, got {log!r}")
            return None
        if low > high:
            errors.append(f"{where}: low {low} is greater than high {high}")
            return None
        if log and low <= 0:
            errors.append(f"{where}: a log range needs low > 0, got {low}")
            return None
        if step is not None and (
            isinstance(step, bool) or not isinstance(step, int | float) or step <= 0
        ):
            errors.append(f"{where}: step must be a positive number, got {step!r}")
            return None
        if log and step not in (None, 1):
            errors.append(f"{where}: a range cannot have both log = true and a step")
            return None
        if step is not None and not _divides(step, high - low):
            last = low + (high - low) // step * step
            errors.append(
                f"{where}: step {step} does not divide the range {low}..{high}, so {high} could "
                f"never be drawn; give high = {last:g} or a step that divides {high - low:g}"
            )
            return None
        if isinstance(low, int) and isinstance(high, int) and isinstance(step, int | None):
            return IntRange(low, high, step or 1, log)
        return FloatRange(float(low), float(high), None if step is None else float(step), log)
    if isinstance(raw, bool | int | float | str):
        return Fixed(raw)
    errors.append(f"{where}: expected a value, a list of choices or a {{low, high}} range")
    return None
