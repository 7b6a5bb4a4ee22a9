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

from nas.data.catalog import DATASETS
from nas.errors import NasError
from nas.fidelity.ladder import Rung, parse_ladder
from nas.settings import KEPT, PINNED, check_types, parse_float, parse_int, resolved_path, setting
from nas.study.record import FIDELITY_SETTINGS
from nas.units import human, parse_count

#: The study user attribute that records a fidelity study's settings.
RECORD_KEY = FIDELITY_SETTINGS

GROUPS = {"panel": "panel and ladder", "data": "data", "study": "study"}


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
class FidelitySettings:
    """Everything ``nas fidelity`` needs (``nas fidelity --help`` shows each field)."""

    space: str = setting(
        "search_spaces/small_cifar.toml",
        "search space the panel is drawn from",
        kind=PINNED,
        metavar="FILE",
        group="panel",
        fingerprint=("space_sha1", "nas.space.space:space_sha1"),
    )
    param_limit: int = setting(
        5_000_000,
        "parameter limit of the panel's candidates",
        kind=PINNED,
        metavar="N",
        parse=lambda v: parse_count(v, "parameter limit"),
        parse_file=True,
        fmt=human,
        group="panel",
    )
    panel: int = setting(
        12,
        "candidates (rank correlations over n candidates spread about 1/sqrt(n) by chance: "
        "30 or more decide)",
        kind=PINNED,
        metavar="N",
        parse=_int,
        group="panel",
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
    val: int = setting(
        2000,
        "validation images, every rung",
        kind=PINNED,
        metavar="N",
        parse=_int,
        group="panel",
    )
    proxy_lr: float = setting(
        0.8,
        "peak rate for 256 images per step, scaled to each rung's batch",
        kind=PINNED,
        metavar="LR",
        parse=_float,
        group="panel",
    )
    target_tau: float = setting(
        0.5,
        "a rung is recommended when it covers the whole panel and the lower bound of its "
        "90%% interval of Kendall's tau reaches T",
        metavar="T",
        parse=_float,
        group="panel",
    )
    seed: int = setting(
        0, "panel and data seed", kind=PINNED, metavar="S", parse=_int, group="panel"
    )
    workers: int = setting(
        1,
        "processes on this machine sharing the jobs, spread over the GPUs as nas search "
        "--workers does; more machines join by running the same command with the same "
        "--storage and --study",
        metavar="K",
        parse=_int,
        group="panel",
    )
    dataset: str = setting("cifar10", "data set", kind=PINNED, choices=DATASETS.names, group="data")
    data_dir: str | None = setting(
        None,
        "where torchvision data sets download to, or the image folder",
        kind=PINNED,
        metavar="DIR",
        group="data",
        to_record=resolved_path,
        show_default=False,
    )
    device: str = setting(
        "auto", "where to train: auto, cpu, cuda, cuda:N", metavar="{auto,cpu,cuda}", group="data"
    )
    storage: str | None = setting(
        None,
        "SQLAlchemy URL of the study database (default: sqlite:///studies/STUDY.db)",
        metavar="URL",
        group="study",
        show_default=False,
    )
    study: str | None = setting(
        None,
        "study name (default: fidelity-SPACE-DATASET)",
        metavar="NAME",
        group="study",
        show_default=False,
    )

    def __post_init__(self) -> None:
        check_types(self)
        if self.panel < 3:
            raise NasError("--panel must be at least 3 (a rank correlation needs 3 candidates)")
        if self.reference in self.ladder:
            raise NasError(f"the reference {self.reference.label} is also a rung of the ladder")
        if self.val < 2:
            raise NasError("--val must be at least 2")
        if self.workers < 1:
            raise NasError("--workers must be at least 1")

    @property
    def study_name(self) -> str:
        return self.study or default_study_name(self.space, self.dataset)

    @property
    def rungs(self) -> tuple[Rung, ...]:
        """The ladder, then the reference."""
        return (*self.ladder, self.reference)
