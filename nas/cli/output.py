"""Shared output helpers: rich tables on stdout, JSON, one-line errors on stderr."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from nas.training.progress import StepProgress

#: Wide enough for the tables when output goes to a file or a pipe (rich assumes 80 there).
_WIDTH = None if sys.stdout.isatty() else 140
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (nothing else goes to stdout with --json)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(
    title: str | None, columns: list[str], rows: list[list[Any]], *, right: tuple[int, ...] = ()
) -> Table:
    """A simple rich table; columns whose index is in ``right`` are right-aligned."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):
        t.add_column(col, justify="right" if i in right else "left")
    for row in rows:
        t.add_row(*[str(v) for v in row])
    return t


def print_hint(args: Sequence[str], meaning: str | None = None, label: str = "next") -> None:
    """Print a command for the user to run as ``LABEL: COMMAND  # MEANING``: shell-quoted,
    on one line however long (a wrapped line would not run), with what it does as a shell
    comment, so that everything after ``LABEL:`` runs as printed. A database password is
    shown as ``***`` (logs of cluster jobs keep these lines), and the comment says so."""
    from nas.study.storage import safe_url

    masked = [safe_url(a) if "://" in a else a for a in args]
    shown = [m if ":***@" in m else a for a, m in zip(args, masked, strict=True)]
    if shown != list(args):
        meaning = (f"{meaning}; " if meaning else "") + "type the password where *** stands"
    text = f"{label}: {shlex.join(shown)}" + (f"  # {meaning}" if meaning else "")
    console.print(text, markup=False, soft_wrap=True)


def fmt_int(n: int | None) -> str:
    """``4913705`` -> ``'4,913,705'``; ``None`` -> ``'-'``."""
    return "-" if n is None else f"{n:,}"


class EpochProgress:
    """Progress inside the epochs of one long training run (``train-winners``).

    On a terminal: a bar with the epoch, images/s and the time left in the epoch. Otherwise
    (a log file, CI): one line at most every ``NAS_LOG_EVERY`` seconds (default 30).
    """

    def __init__(self, label: str, out: Console | None = None) -> None:
        from nas.training.progress import Throttle, log_every

        self.label = label
        self.out = out or console
        self.line = Throttle(log_every())
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.epoch = 0

    def __enter__(self) -> EpochProgress:
        if self.out.is_terminal:
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]} img/s"),
                TimeRemainingColumn(),
                console=self.out,
                transient=True,
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def __call__(self, p: StepProgress) -> None:
        """Show where training is (called after every step)."""
        if self.bar is None:
            if self.line():
                self.out.print(f"  {self.label} {p.text()}")
            return
        description = f"  {self.label} epoch {p.epoch}/{p.epochs}"
        if self.task is None or p.epoch != self.epoch:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task(description, total=p.steps, rate="-")
            self.epoch = p.epoch
        self.bar.update(self.task, completed=p.step, rate=f"{p.images_per_s:.0f}")
