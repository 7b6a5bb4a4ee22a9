"""Progress inside an epoch: what the trainer reports after each step, and a throttle.

A default-space candidate on a CPU can spend minutes in one epoch; the trainer reports every
step (no device synchronisation: it counts images and reads the clock) and the displays
decide how often to show it: a live bar a few times a second on a terminal, a log line at
most every :func:`log_every` seconds otherwise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: ``NAS_LOG_EVERY=SEC``: seconds between progress lines in logs (default 30).
LOG_EVERY_ENV = "NAS_LOG_EVERY"


@dataclass(frozen=True)
class StepProgress:
    """Where training is within an epoch.

    Attributes:
        epoch: 1-based epoch.
        epochs: epochs in all.
        step: steps done in this epoch.
        steps: steps per epoch.
        images: training images done in this epoch.
        seconds: seconds since the epoch started (its augmentation pass included).
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    images: int
    seconds: float

    @property
    def fraction(self) -> float:
        """Share of the epoch done."""
        return self.step / max(1, self.steps)

    @property
    def images_per_s(self) -> float:
        """Training images per second so far in this epoch."""
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left in this epoch at the rate so far."""
        if self.step == 0:
            return float("inf")
        return self.seconds * (self.steps - self.step) / self.step

    def text(self) -> str:
        """``epoch 1/3: 38% (1,920/5,000 images), 310 img/s, epoch ETA 10s``."""
        total = self.images * self.steps // max(1, self.step)
        eta = "?" if self.eta == float("inf") else format_seconds(self.eta)
        return (
            f"epoch {self.epoch}/{self.epochs}: {100 * self.fraction:.0f}% "
            f"({self.images:,}/{total:,} images), {self.images_per_s:.0f} img/s, "
            f"epoch ETA {eta}"
        )


def format_seconds(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def log_every() -> float:
    """Seconds between progress lines in logs: ``NAS_LOG_EVERY``, default 30."""
    try:
        return max(0.0, float(os.environ.get(LOG_EVERY_ENV, "30")))
    except ValueError:
        return 30.0


class Throttle:
    """True at most once every ``every`` seconds, the first time ``every`` seconds after it
    was made (so a run shorter than the interval logs no progress line)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            return True
        return False
