"""A latency that does not vary from run to run, for tests of which candidates a latency
limit rejects (on a shared CPU a timed median moves by 15% between runs, enough to decide
whether a candidate near the limit fits).

The real measurement still runs, in the study's context; only its latency is replaced, by a
millisecond per 10,000 parameters. :func:`install` patches this process; :func:`subprocess_env`
patches a ``nas`` command started with that environment (through a ``sitecustomize``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

SITE = "from tests.hardware.stable_latency import install\n\ninstall()\n"


def stable_latency(cfg: Any) -> float:
    """A millisecond per 10,000 parameters of ``cfg``."""
    from nas.budget import measure_metric

    return measure_metric(cfg, "params") / 1e4


def install() -> list[int]:
    """Patch :func:`nas.hardware.measure.measure` in this process; returns the list the
    timed-run count of every real measurement is appended to."""
    import nas.hardware.measure as hardware

    real = hardware.measure
    timed: list[int] = []

    def stable(cfg: Any, ctx: Any, *args: Any, **kw: Any) -> Any:
        m = real(cfg, ctx, *args, **kw)
        timed.append(m.runs)
        return dataclasses.replace(m, latency_ms=stable_latency(cfg))

    hardware.measure = stable  # type: ignore[assignment]
    return timed


def subprocess_env(folder: Path) -> dict[str, str]:
    """The environment that makes a ``nas`` subprocess use :func:`stable_latency`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITE)
    return {"PYTHONPATH": str(folder)}
