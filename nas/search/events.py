"""What a search tells its display, and two displays: a live table and plain log lines."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from nas.objectives import METRICS, hardware
from nas.training.progress import StepProgress, Throttle, format_seconds, log_every
from nas.training.trainer import EpochResult
from nas.units import human, plural


class SearchMonitor(Protocol):
    """Progress events of a search; a monitor is entered for the whole search."""

    def __enter__(self) -> SearchMonitor: ...

    def __exit__(self, *exc: object) -> None: ...

    def rejected(self, number: int, reason: str, seconds: float) -> None: ...

    def trial_started(
        self, number: int, label: str, values: Mapping[str, float], epochs: int
    ) -> None:
        """A candidate that fits starts training: ``label`` names it, ``values`` are its
        metrics measured before training (params, FLOPs, ...)."""
        ...

    def epoch_done(self, number: int, result: EpochResult) -> None: ...

    def step_progress(self, number: int, progress: StepProgress) -> None:
        """After every training step (the display decides how often to show it)."""
        ...

    def trial_finished(self, number: int, status: str, detail: str) -> None: ...

    def totals(self, totals: Totals) -> None:
        """The study's counts, before every trial."""
        ...


@dataclass(frozen=True)
class Totals:
    """A study's counts as the display shows them."""

    trained: int
    target: int
    rejected: int
    stopped: int
    failed: int
    best: float | None

    def text(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4f}"
        return (
            f"trained {self.trained}/{self.target}   rejected {self.rejected}   stopped early "
            f"{self.stopped}   failed {self.failed}   best val acc {best}"
        )


@dataclass
class _Row:
    number: int
    label: str
    params: int
    epochs: int
    epoch: int = 0
    accuracy: float | None = None
    status: str = "training"
    started: float = field(default_factory=time.perf_counter)
    epoch_seconds: float = 0.0
    progress: StepProgress | None = None
    measured: dict[str, float] = field(default_factory=dict)  # hardware metrics, by name

    def epoch_text(self) -> str:
        """``1/3`` after an epoch; ``2/3 45%`` inside one."""
        p = self.progress
        if self.status == "training" and p is not None and p.epoch > self.epoch:
            return f"{p.epoch}/{self.epochs} {100 * p.fraction:.0f}%"
        return f"{self.epoch}/{self.epochs}"

    def rate(self) -> str:
        p = self.progress
        return "" if self.status != "training" or p is None else f"{p.images_per_s:.0f}"

    def eta(self) -> str:
        """Seconds left in the trial: the rest of this epoch, then whole epochs."""
        if self.status != "training":
            return ""
        p = self.progress
        if p is not None and p.epoch > self.epoch and p.step:
            epoch_s = p.seconds / p.fraction
            return format_seconds(p.eta + epoch_s * (self.epochs - p.epoch))
        if not self.epoch:
            return ""
        return format_seconds(self.epoch_seconds * (self.epochs - self.epoch))


class LiveMonitor:
    """A live table on stderr: the last trials, the running one with its epoch and ETA, and
    the study's totals."""

    def __init__(self, console: Console | None = None, rows: int = 12) -> None:
        self.console = console or Console(stderr=True)
        self.redraw = Throttle(0.25)  # step progress redraws the table at most 4 times a second
        self.rows: list[_Row] = []
        self.max_rows = rows
        self.total = "starting"
        self.live = Live(
            self._render(), console=self.console, refresh_per_second=4, transient=False
        )

    def __enter__(self) -> LiveMonitor:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._render())
        self.live.__exit__(None, None, None)

    def _render(self) -> Group:
        table = Table(header_style="bold", title_justify="left")
        shown = [m for m in hardware() if any(m.name in r.measured for r in self.rows)]
        for col, right in (
            ("trial", True),
            ("attention", False),
            ("params", True),
            *((m.heading, True) for m in shown),
            ("epoch", True),
            ("img/s", True),
            ("val acc", True),
            ("ETA", True),
            ("status", False),
        ):
            table.add_column(col, justify="right" if right else "left")
        for r in self.rows[-self.max_rows :]:
            acc = "" if r.accuracy is None else f"{r.accuracy:.4f}"
            table.add_row(
                str(r.number),
                r.label,
                human(r.params),
                *(m.fmt(v) if (v := r.measured.get(m.name)) is not None else "" for m in shown),
                r.epoch_text(),
                r.rate(),
                acc,
                r.eta(),
                r.status,
            )
        return Group(table, self.total)

    def _refresh(self) -> None:
        self.live.update(self._render())

    def rejected(self, number: int, reason: str, seconds: float) -> None:
        return None  # the totals line counts rejections

    def trial_started(
        self, number: int, label: str, values: Mapping[str, float], epochs: int
    ) -> None:
        measured = {m.name: values[m.name] for m in hardware() if m.name in values}
        self.rows.append(
            _Row(number, label, int(values.get("params", 0)), epochs, measured=measured)
        )
        self._refresh()

    def epoch_done(self, number: int, result: EpochResult) -> None:
        row = next((r for r in reversed(self.rows) if r.number == number), None)
        if row:
            row.epoch, row.accuracy, row.epoch_seconds = (
                result.epoch,
                result.accuracy,
                result.seconds,
            )
        self._refresh()

    def step_progress(self, number: int, progress: StepProgress) -> None:
        row = next((r for r in reversed(self.rows) if r.number == number), None)
        if row:
            row.progress = progress
        if self.redraw():
            self._refresh()

    def trial_finished(self, number: int, status: str, detail: str) -> None:
        row = next((r for r in reversed(self.rows) if r.number == number), None)
        if row:
            row.status = status if status != "failed" else f"failed: {detail[:40]}"
        self._refresh()

    def totals(self, totals: Totals) -> None:
        self.total = totals.text()
        self._refresh()


class LogMonitor:
    """One plain line per event on stderr (``--quiet``, or when stderr is not a terminal)."""

    def __init__(self, verbose_rejections: bool = False) -> None:
        self.verbose_rejections = verbose_rejections
        self.progress_line = Throttle(log_every())

    def _log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def __enter__(self) -> LogMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def rejected(self, number: int, reason: str, seconds: float) -> None:
        self._log(f"trial {number} rejected in {1000 * seconds:.0f} ms: {reason}")

    def trial_started(
        self, number: int, label: str, values: Mapping[str, float], epochs: int
    ) -> None:
        self.progress_line = Throttle(log_every())
        measured = ", ".join(METRICS[name].show(v) for name, v in values.items())
        self._log(f"trial {number} training: {label}, {measured}, {plural(epochs, 'epoch')}")

    def step_progress(self, number: int, progress: StepProgress) -> None:
        if self.progress_line():
            self._log(f"trial {number} {progress.text()}")

    def epoch_done(self, number: int, result: EpochResult) -> None:
        self._log(
            f"trial {number} epoch {result.epoch}/{result.epochs}: val acc "
            f"{result.accuracy:.4f}, loss {result.loss:.3f}, {result.seconds:.1f}s"
        )

    def trial_finished(self, number: int, status: str, detail: str) -> None:
        self._log(f"trial {number} {status}: {detail}")

    def totals(self, totals: Totals) -> None:
        return None


class SilentMonitor(LogMonitor):
    """Says nothing: for searches run from Python (benchmarks, tests) that report at the end."""

    def _log(self, text: str) -> None:
        return None
