"""Shared output helpers: rich tables on stdout, JSON, one-line errors on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

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


def fmt_int(n: int | None) -> str:
    """``4913705`` -> ``'4,913,705'``; ``None`` -> ``'-'``."""
    return "-" if n is None else f"{n:,}"
