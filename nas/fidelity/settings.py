"""``nas fidelity``'s settings, each declared once (see :mod:`nas.settings`).

Light (no torch): ``nas fidelity --help`` and argument checks are built from it. A fidelity
study records its pinned settings (what every job's accuracy depends on: space, data,
limit, panel, validation images, learning rate, seed) and keeps its ladder and reference:
a later run that does not give them takes the recorded ones, and one that gives others may
add rungs or change the reference, reusing every finished job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.fidelity.ladder import Rung, parse_ladder
from nas.settings import (
    KEPT,
    PYTHON,
    Problem,
    SettingsError,
    check_types,
    parse_float,
    parse_int,
    pinned,
    setting,
)
from nas.study.record import FIDELITY_SETTINGS
from nas.study.settings import StudySettings, redeclare

#: The study user attribute that records a fidelity study's settings.
RECORD_KEY = FIDELITY_SETTINGS

WORKERS_HELP = (
    "processes on this machine sharing the jobs, spread over the GPUs as nas search --workers "
    "does; more machines join by running the same command with the same --storage and --study"
)

GROUPS = {
    "panel": "panel and ladder",
    "search": "panel and ladder",
    "proxy": "panel and ladder",
    "workers": "panel and ladder",
    "data": "data",
    "study": "study",
}


_int, _float = parse_int, parse_float


def _ladder(value: Any) -> tuple[Rung, ...]:
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    return parse_ladder(str(value))


def _rung(value: Any) -> Rung:
    return Rung.parse(str(value))


def default_study_name(space: str, dataset: str) -> str:
    """The study's name when ``--study`` is not given."""
    return f"fidelity-{Path(space).stem}-{dataset}"


@dataclass(frozen=True)
class FidelitySettings(StudySettings):
    """Everything ``nas fidelity`` needs (``nas fidelity --help`` shows each setting): the
    settings every study shares (:class:`nas.study.settings.StudySettings`) and the
    panel's own."""

    space: str = redeclare(
        StudySettings,
        "space",
        default="search_spaces/small_cifar.toml",
        help="search space the panel is drawn from",
    )
    seed: int = redeclare(StudySettings, "seed", help="panel and data seed")
    study: str | None = redeclare(
        StudySettings, "study", help="study name (default: fidelity-SPACE-DATASET)"
    )
    workers: int = redeclare(StudySettings, "workers", help=WORKERS_HELP)
    panel: int = pinned(
        12,
        "candidates (rank correlations over n candidates spread about 1/sqrt(n) by chance: "
        "30 or more decide)",
        "N",
        _int,
        "panel",
    )
    ladder: tuple[Rung, ...] = setting(
        (Rung(1, 2000), Rung(3, 5000), Rung(5, 10000)),
        "proxy fidelities to rank, EPOCHSxIMAGES[:RECIPE], comma-separated; a rung with "
        "':fast' trains with the 'fast' proxy recipe, so 3x5000,3x5000:fast compares the two "
        "recipes on one panel",
        kind=KEPT,
        metavar="RUNGS",
        parse=_ladder,
        parse_file=True,
        group="panel",
        to_record=lambda ladder: [r.label for r in ladder],
        from_record=_ladder,
    )
    reference: Rung = setting(  # noqa: RUF009 (a field specifier, not a default)
        Rung(30, None),
        "the fidelity every rung is compared with (30xall: 30 epochs on every training image "
        "outside the validation split)",
        kind=KEPT,
        metavar="RUNG",
        parse=_rung,
        parse_file=True,
        group="panel",
        to_record=lambda rung: rung.label,
        from_record=_rung,
    )
    val: int = pinned(
        2000, "validation images, every rung", "N", _int, "panel", bounded_by=("val", "")
    )
    target_tau: float = setting(
        0.5,
        "a rung is recommended when it covers the whole panel and the lower bound of its "
        "90%% interval of Kendall's tau reaches T",
        metavar="T",
        parse=_float,
        group="panel",
    )

    def __post_init__(self) -> None:
        check_types(self)
        problems: list[Problem | str] = [
            Problem(name, getattr(self, name), problem)
            for name, wrong, problem in (
                ("panel", self.panel < 3, "must be at least 3 (a rank correlation needs 3)"),
                (  # written so that nan is refused too
                    "target_tau",
                    not -1.0 <= self.target_tau <= 1.0,
                    "must be between -1 and 1 (a Kendall tau)",
                ),
                ("val", self.val < 2, "must be at least 2"),
                ("workers", self.workers < 1, "must be at least 1"),
            )
            if wrong
        ]
        if self.reference in self.ladder:
            problems.append(f"the reference {self.reference.label} is also a rung of the ladder")
        problems += self.shared_problems()
        if problems:
            raise SettingsError(problems, default=PYTHON)  # built in Python

    @property
    def study_name(self) -> str:
        return self.study or default_study_name(self.space, self.dataset)

    @property
    def rungs(self) -> tuple[Rung, ...]:
        """The ladder, then the reference."""
        return (*self.ladder, self.reference)
