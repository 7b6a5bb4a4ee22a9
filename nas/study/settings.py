"""The settings every study shares, declared once (see :mod:`nas.settings`).

A search (:class:`nas.search.settings.SearchSettings`) and a fidelity study
(:class:`nas.fidelity.settings.FidelitySettings`) both derive from :class:`StudySettings`:
where the study lives (``--storage``, ``--study``), the space and its limits (one flag per
limit of :data:`nas.objectives.METRICS`), the data, the device, the seed, the learning rate
and the local worker count. The commands that only read a study (``train-winners``,
``export``, ``report``, ``dashboard``) take ``--storage`` and ``--study`` from the same
declarations (:func:`add_study_flags`). A subclass that needs other words for a shared
setting re-declares only those (:func:`redeclare`).

Light: no torch, Optuna or SQLAlchemy (``--help`` is built from it).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nas.data.catalog import DATASETS
from nas.errors import unknown_word
from nas.objectives import METRICS, limited
from nas.settings import (
    PINNED,
    Entry,
    Problem,
    Setting,
    add_flags,
    build,
    mapping_field,
    parse_float,
    parse_int,
    pinned,
    resolved_path,
    setting,
    shown,
)
from nas.units import human


def _limit_fmt(m: Any) -> Any:
    """How a limit on ``m`` is shown: ``500.00k`` for counts, ``2.00 ms`` with a unit,
    ``none`` for no limit."""
    fmt = m.show if m.unit else human
    return lambda value: shown(value) if value is None else fmt(value)


def limit_entries() -> list[Entry]:
    """One pinned setting per limit of :data:`nas.objectives.METRICS` (``param_limit``,
    ``flops_limit``, ...), in the registry's order."""
    entries = []
    for m in limited():
        assert m.limit is not None
        entries.append(
            Entry(
                m.name,
                m.limit.setting,
                Setting(
                    help=m.limit.help,
                    kind=PINNED,
                    metavar="LIMIT",
                    parse=m.limit.parse,
                    parse_file=True,
                    fmt=_limit_fmt(m),
                    group="search",
                    legacy=m.limit.legacy,
                    show_default=m.limit.default is not None,
                ),
                m.limit.default,
            )
        )
    return entries


@dataclass(frozen=True)
class StudySettings:
    """What every study records or needs, whatever drives it (see the module doc)."""

    space: str = setting(
        "search_spaces/attention_resnet.toml",
        "search-space TOML",
        kind=PINNED,
        metavar="FILE",
        group="search",
        fingerprint=("space_sha1", "nas.space.space:space_sha1"),
    )
    limits: dict[str, float] = mapping_field(  # noqa: RUF009 (a field specifier)
        limit_entries,
        "hard limits by metric (nas.objectives.METRICS): over one, a candidate "
        "is rejected before training",
    )
    seed: int = pinned(
        0, "seed of the data order, the initial weights and the sampler", "S", parse_int, "search"
    )
    proxy_lr: float = pinned(
        0.8,
        "peak learning rate for a batch of 256 images, scaled linearly with the batch size "
        "(Goyal et al. 2017): at batch B the rate is LR * B / 256, e.g. 0.2 at batch 64",
        "LR",
        parse_float,
        "proxy",
    )
    dataset: str = pinned(
        "cifar10",
        "data set; 'fake' is random images for smoke tests only",
        group="data",
        choices=DATASETS.names,
    )
    data_dir: str | None = setting(
        None,
        "where torchvision data sets download to, or the image folder (DIR/train/<class>/*, "
        "DIR/test/<class>/*); default: a user cache folder. Pinned: a study resumes on its "
        "recorded folder, and takes another only where that one does not exist (the data "
        "moved, or this machine mounts it elsewhere)",
        kind=PINNED,
        metavar="DIR",
        group="data",
        to_record=resolved_path,
        show_default=False,
        relocatable=True,
    )
    device: str = setting(
        "auto",
        "where to train: auto (CUDA if available), cpu, cuda, cuda:N",
        metavar="{auto,cpu,cuda,cuda:N}",
        group="data",
    )
    storage: str | None = setting(
        None,
        "SQLAlchemy URL of the study database (default: sqlite:///studies/STUDY.db; "
        "postgresql+psycopg://... for many workers)",
        metavar="URL",
        group="study",
        show_default=False,
    )
    study: str | None = setting(
        None,
        "study name",
        metavar="NAME",
        group="study",
        show_default=False,
    )
    workers: int = setting(
        1,
        "local worker processes sharing the study",
        metavar="K",
        parse=parse_int,
        group="workers",
    )

    @classmethod
    def of(cls, **values: Any) -> Any:
        """Settings from values by setting name, limits among them (``param_limit=150_000``,
        as a study file's table gives them): the limits given replace the defaults' only
        where given."""
        return build(cls, values)

    def limit(self, metric: str) -> float | None:
        """The limit on ``metric`` (None: none)."""
        return self.limits.get(metric)

    def shared_problems(self) -> list[Problem | str]:
        """A problem per shared setting that no study can take: a limit that is not a finite
        positive number of a limited metric (named by its setting, ``param_limit``), and a
        learning rate that is not a finite positive number, a seed out of range, an unknown
        data set and a device no run can have."""
        problems: list[Problem | str] = []
        for name, value in self.limits.items():
            limit = METRICS[name].limit if name in METRICS else None
            if limit is None:
                names = [m.name for m in limited()]
                problems.append("limits: " + unknown_word("metric", name, names))
            elif not _positive(value):
                problems.append(Problem(limit.setting, value, "must be a positive number"))
        if not _positive(self.proxy_lr):
            problems.append(Problem("proxy_lr", self.proxy_lr, "must be a positive number"))
        if not -MAX_SEED <= self.seed <= MAX_SEED:
            problems.append(
                Problem("seed", self.seed, f"must be between {-MAX_SEED:,} and {MAX_SEED:,}")
            )
        if self.dataset not in DATASETS.names():  # a study file or Python, past argparse
            problems.append(unknown_word("data set", self.dataset, DATASETS.names()))
        if not DEVICE.fullmatch(self.device):  # torch is not imported to check it
            problems.append(
                Problem("device", self.device, "must be auto, cpu, cuda or cuda:N (or mps, xpu)")
            )
        return problems


#: The devices a run may name (``mps`` and ``xpu`` too): checked before torch loads.
DEVICE = re.compile(r"auto|(cpu|cuda|mps|xpu)(:\d+)?")

#: The largest ``--seed`` (and, negated, the smallest): a trial's weights are seeded from
#: ``seed * 100_003 + trial``, which torch takes as a 64-bit integer (a larger seed failed
#: every trial); the sampler's seed is taken modulo 2**31.
MAX_SEED = 90_000_000_000_000


def _positive(value: Any) -> bool:
    """Whether ``value`` is a finite number above zero (not a bool, not NaN)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def redeclare(
    cls: type[Any], name: str, *, default: Any = dataclasses.MISSING, **changes: Any
) -> Any:
    """The setting ``name`` of ``cls`` as a subclass declares it with other words:
    ``changes`` replace fields of its :class:`~nas.settings.Setting` (``help``, ``group``)
    and ``default`` its default; everything else stays as ``cls`` declared it."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    s = dataclasses.replace(field.metadata["setting"], **changes)
    value = field.default if default is dataclasses.MISSING else default
    return dataclasses.field(default=value, metadata={"setting": s})


#: ``--help`` section titles of the shared settings' groups.
GROUPS: Mapping[str, str] = {"study": "study", "data": "data"}


def add_study_flags(p: argparse.ArgumentParser, *, only_storage: bool = False) -> None:
    """``--storage`` and a required ``--study``, declared by :class:`StudySettings`, for a
    command that reads one study (``only_storage``: a command that reads every study of a
    database)."""
    names = ("storage",) if only_storage else ("storage", "study")
    add_flags(p, StudySettings, only=names, groups=GROUPS, required=names[1:])
    p.set_defaults(storage=None)  # the default SQLite file of the study
