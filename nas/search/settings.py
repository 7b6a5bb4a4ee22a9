"""Search settings as typed data, each declared once (see :mod:`nas.settings`).

Every field carries its flag, help, kind and parser; ``nas search``'s flags, the study
file's ``[search]`` table, what a study records and what it pins all come from here. A run
takes, for each setting, the flag if given, else the study file's value, else the study's
recorded value (pinned and kept settings), else the default.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError, did_you_mean
from nas.objectives import objectives_help, parse_objectives
from nas.settings import (
    KEPT,
    PINNED,
    PYTHON,
    Problem,
    SettingsError,
    check_types,
    images_text,
    parse_float,
    parse_int,
    parse_number,
    pinned,
    setting,
)
from nas.study.samplers import SAMPLERS, sampler_help
from nas.study.settings import StudySettings, redeclare
from nas.training.recipe import DEFAULT_PROXY_RECIPE, PROXY_RECIPES
from nas.units import human

if TYPE_CHECKING:
    from nas.proxy.context import ProxySpec

#: Early-stopping rules: multi-objective successive halving, or none.
EARLY_STOPPING = ("sha", "off")
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")

#: Lower bounds: (setting, minimum, unit of the message).
MINIMUMS = (
    ("trials", 1, ""),
    ("proxy_epochs", 1, ""),
    ("workers", 1, ""),
    ("max_failures", 1, ""),
    ("min_members", 1, ""),
    ("min_epochs", 1, ""),
    ("proxy_subset", 2, ""),
    ("proxy_val", 2, ""),
    ("proxy_batch_size", 2, ""),
    ("latency_batch", 1, ""),
    ("db_retry", 0, " seconds"),
    ("grace_period", 2, " seconds"),
)

WORKERS_HELP = (
    "local worker processes sharing the study, spread over the GPUs round-robin: each gets "
    "CUDA_VISIBLE_DEVICES set to its one GPU (taken from yours if set), so K above the GPU "
    "count puts several on one GPU; for many machines, run nas search on each with one "
    "--storage postgresql+psycopg:// URL"
)

#: ``--help`` sections of the settings' groups.
GROUPS = {
    "search": "search",
    "stopping": "early stopping: asynchronous successive halving, multi-objective aware",
    "proxy": "proxy training",
    "data": "data",
    "study": "study",
    "workers": "workers",
    "hardware": "hardware: latency and peak memory, measured before training on the device "
    "the search runs on (--objectives accuracy,latency, --latency-limit, --memory-limit)",
}


def parse_images(value: Any) -> int | None:
    """A number of images, or ``all`` (None: every image)."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    images: int = parse_number(value, int, "a number of images or 'all'")
    return images


def parse_early_stopping(value: Any) -> str:
    """``sha`` or ``off`` (study files from before said true or false)."""
    if isinstance(value, bool):
        return "sha" if value else "off"
    if value not in EARLY_STOPPING:
        raise NasError(f"must be one of {', '.join(EARLY_STOPPING)}, got {value!r}")
    return str(value)


_int, _float = parse_int, parse_float


def images(default: int, help: str, bound: str) -> Any:
    """A pinned count of proxy images (``all``: every image), at most what the data hold
    in ``bound`` (:func:`nas.data.splits.split_room`)."""
    return pinned(
        default,
        help,
        "N",
        parse_images,
        "proxy",
        parse_file=True,
        fmt=images_text,
        bounded_by=(bound, "'all'"),
    )


@dataclass(frozen=True)
class SearchSettings(StudySettings):
    """Everything ``nas search`` needs (``nas search --help`` shows each setting's help): the
    settings every study shares (:class:`nas.study.settings.StudySettings`) and the
    search's own."""

    study: str | None = redeclare(
        StudySettings, "study", help="study name (default: derived from space, data set and limit)"
    )
    workers: int = redeclare(StudySettings, "workers", help=WORKERS_HELP)
    trials: int = setting(
        20,
        "trained trials the study should have in all; rejected candidates do not count",
        kind=KEPT,
        metavar="N",
        parse=_int,
        group="search",
    )
    objectives: tuple[str, ...] = setting(
        ("accuracy", "params"),
        objectives_help,
        kind=PINNED,
        metavar="OBJ",
        parse=parse_objectives,
        parse_file=True,
        group="search",
    )
    sampler: str = setting(
        "auto",
        sampler_help,
        kind=KEPT,
        legacy="tpe",
        choices=SAMPLERS.names,
        group="search",
    )
    timeout: float | None = setting(
        None,
        "stop starting new trials after SEC seconds",
        metavar="SEC",
        parse=_float,
        group="search",
    )
    enqueue_presets: bool = setting(
        False, "start with the seed presets that fit the limits", switch=True, group="search"
    )
    early_stopping: str = setting(
        "sha",
        "'sha' (after epochs m, m*eta, m*eta^2, ... below --proxy-epochs a proxy goes on only "
        "if no trial of no higher cost beat it at that epoch, or it is in the top 1/eta of the "
        "trials that got there; never stopped by a costlier trial) or 'off'",
        kind=PINNED,
        choices=EARLY_STOPPING,
        parse=parse_early_stopping,
        parse_file=True,
        from_record=parse_early_stopping,
        group="stopping",
        legacy="sha",
        extra_flags=(("--no-early-stopping", "off", "the same as --early-stopping off"),),
    )
    eta: float = setting(
        3.0,
        "keep the top 1/eta at each rung; rungs eta times apart (3: chosen by replaying the "
        "stopper on recorded CIFAR-10 curves, docs/evidence/early-stopping.md)",
        kind=PINNED,
        parse=_float,
        group="stopping",
        legacy=2.0,
    )
    min_epochs: int = pinned(
        1,
        "epochs before the first decision (the first rung)",
        "M",
        _int,
        "stopping",
        legacy=1,
    )
    min_members: int = pinned(
        3,
        "trials that must have reached a rung before any trial is stopped there",
        "N",
        _int,
        "stopping",
        legacy=1,
    )
    proxy_epochs: int = setting(
        3, "epochs per candidate", kind=PINNED, metavar="E", parse=_int, group="proxy"
    )
    proxy_subset: int | None = images(5000, "training images per candidate, or 'all'", "train")
    proxy_val: int | None = images(2000, "validation images scored per epoch, or 'all'", "val")
    proxy_batch_size: int | None = pinned(
        None, "images per step (default: about 60 steps per epoch, 32..256)", "B", _int, "proxy"
    )
    proxy_recipe: str = setting(
        DEFAULT_PROXY_RECIPE,
        "how proxies train: 'standard' crops after padding by 4, flips, label smoothing 0.1; "
        "'fast' adds airbench's label smoothing 0.2, padding 2 and flip test-time "
        "augmentation. Compare them with nas fidelity --ladder 3x5000,3x5000:fast",
        kind=PINNED,
        choices=PROXY_RECIPES.names,
        group="proxy",
        legacy=DEFAULT_PROXY_RECIPE,
    )
    val_fraction: float = setting(
        0.1,
        "share of the training images held out as the validation split",
        kind=PINNED,
        flag=None,
        parse=_float,
    )
    latency_batch: int | None = setting(
        None,
        "images per forward pass when latency and peak memory are measured (default: 1 on "
        "CPU, 32 on CUDA); recorded with the study, with the device, its thread count and "
        "the precision: another value needs --remeasure",
        kind=KEPT,
        metavar="B",
        parse=_int,
        group="hardware",
        show_default=False,
    )
    remeasure: bool = setting(
        False,
        "continue a study whose latency and memory were measured on another device, thread "
        "count or batch: record this context and measure the candidates from now on here "
        "(the trials before keep their values and leave the front)",
        switch=True,
        group="hardware",
    )
    quiet: bool = setting(
        False, "plain log lines instead of the live table", switch=True, group="workers"
    )
    worker_index: int = setting(0, "", parse=_int, hidden=True, group="workers")
    grace_period: int = setting(
        60,
        "seconds without heartbeat before a worker's trial is failed and retried; the study "
        "keeps it, so that every worker judges the others' heartbeats alike",
        kind=PINNED,
        metavar="SEC",
        parse=_int,
        group="workers",
    )
    db_retry: float = setting(
        60.0,
        "when the study database goes away (a restart, a network blip), retry with backoff "
        "for up to SEC seconds while training goes on; past that, exit with one line and "
        "leave the trial to the heartbeat recovery",
        metavar="SEC",
        parse=_float,
        group="workers",
    )
    max_failures: int = setting(
        10, "failed trials in a row that end the search", flag=None, parse=_int
    )

    def __post_init__(self) -> None:
        check_types(self)
        problems = [*self._below_minimum(), *self._invalid(), *self.shared_problems()]
        if problems:
            raise SettingsError(problems, default=PYTHON)  # built in Python

    def _below_minimum(self) -> list[Problem]:
        """A problem per setting below its minimum (see :data:`MINIMUMS`)."""
        problems = []
        for name, low, unit in MINIMUMS:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                problems.append(Problem(name, value, "must be a finite number"))
            elif value is not None and value < low:
                problems.append(Problem(name, value, f"must be at least {low}{unit}"))
        return problems

    def _invalid(self) -> list[Problem | str]:
        """A problem per setting whose value is not one it can take."""
        samplers = ", ".join(SAMPLERS.names())
        checks: tuple[tuple[bool, Problem | str], ...] = (
            (self.proxy_recipe in PROXY_RECIPES, f"unknown proxy recipe {self.proxy_recipe!r}; "
             f"valid: {', '.join(PROXY_RECIPES)}"),
            (self.sampler in SAMPLERS.names(), f"unknown sampler {self.sampler!r}"
             f"{did_you_mean(self.sampler, SAMPLERS.names()) or '; valid: ' + samplers}"),
            (self.early_stopping in EARLY_STOPPING, Problem("early_stopping", self.early_stopping,
             f"must be one of {', '.join(EARLY_STOPPING)}")),
            (self.eta > 1, Problem("eta", self.eta, "must be greater than 1")),
            (self.study is None or bool(STUDY_NAME.match(self.study)),
             f"study name {self.study!r} may use letters, digits, '_', '-', '.'"),
            (self.timeout is None or self.timeout > 0, Problem("timeout", self.timeout,
             "must be positive")),
            (0 < self.val_fraction < 1, Problem("val_fraction", self.val_fraction,
             "must be between 0 and 1 (the share of the training images held out)")),
        )  # fmt: skip
        problems: list[Problem | str] = [message for ok, message in checks if not ok]
        try:
            parse_objectives(self.objectives)
        except NasError as exc:
            problems.append(str(exc))
        return problems

    @property
    def study_name(self) -> str:
        """The study's name: ``--study``, else one derived from space, data set and limit."""
        if self.study:
            return self.study
        limit = self.limit("params")
        size = human(limit, 1) if limit is not None else "any-size"
        return f"{Path(self.space).stem}-{self.dataset}-{size}"

    @property
    def proxy(self) -> ProxySpec:
        """How this search's proxies train."""
        from nas.proxy.context import ProxySpec

        spec = (self.proxy_epochs, self.proxy_subset, self.proxy_val, self.proxy_batch_size)
        return ProxySpec(*spec, self.proxy_lr, self.proxy_recipe, self.val_fraction)

    def replace(self, **changes: Any) -> SearchSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
