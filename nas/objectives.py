"""What a search measures about a candidate, as data: one registry of metrics.

A :class:`Metric` says everything the rest of ``nas`` needs to know about one measurement:
its name (what ``--objectives`` lists), the trial-record field that holds it, its direction,
how tables and figures label it, the hard limit that bounds it (the ``--param-limit`` flag,
the study-file key and the recorded setting all come from its :class:`Limit`), the function
that measures a candidate, and whether it is known before training (then a candidate over
its limit is rejected in milliseconds, and the sampler learns from it) or observed by
training.

Settings validation, the budget check, the search's objective, the statistics, the report,
the dashboard, export, winners and ``--help`` all iterate :data:`METRICS`; adding an objective
is one :func:`register` of a :class:`Metric` and the function it names. Light: no torch or
Optuna (``--help`` is built from it); a metric's measuring function is imported the first
time a candidate is measured.

A metric registered in a script is known to that process only. For every process (``nas
search``, ``nas report``, ``nas export``, the workers of ``--workers K``, a dashboard), an
installed package names it as an entry point of the group :data:`PLUGIN_GROUP`, loaded with
this module::

    [project.entry-points."nas.objectives"]
    depth = "mymetrics:DEPTH"     # a Metric (or a list of them)

A study that optimises a metric this process does not know is refused in one line
(:func:`unknown_objectives`), never read as another.

The first objective of every search is :data:`ACCURACY` (observed on the validation split and
maximised); the others are minimised, each a cost that accuracy is traded against.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from nas.errors import NasError, StorageError, did_you_mean
from nas.registry import Registry
from nas.units import (
    AtLeast,
    human,
    human_ms,
    over_limit,
    parse_bytes,
    parse_count,
    parse_duration_ms,
)

Direction = Literal["maximize", "minimize"]

#: The objective every search has first: proxy validation accuracy.
ACCURACY = "accuracy"


@dataclass(frozen=True)
class Limit:
    """A hard limit on a metric: a candidate over it is rejected before training.

    Attributes:
        setting: the setting's name: study-file key, recorded key and, with dashes, the flag
            (``param_limit`` -> ``--param-limit``).
        help: the flag's help.
        default: the limit when none is given (None: no limit).
        legacy: the value a study recorded before the limit existed implies (None: none).
        parse: a flag's text or a study file's value -> the limit (``"5M"`` -> 5000000).
    """

    setting: str
    help: str
    default: float | None = None
    legacy: float | None = None
    parse: Callable[[Any], float] = parse_count

    @property
    def flag(self) -> str:
        return "--" + self.setting.replace("_", "-")


@dataclass(frozen=True)
class Metric:
    """One measurement of a candidate (see the module doc).

    Attributes:
        name: what ``--objectives`` and :data:`METRICS` call it.
        field: the trial-record field (user attribute) that holds a trial's value.
        direction: ``maximize`` or ``minimize``.
        label: how tables, reasons and figure axes name it (``FLOPs``).
        dashboard: the metric name optuna-dashboard shows for the objective.
        unit: a unit shown after values (``ms``; empty for counts).
        limit: the hard limit that bounds it (None: it cannot be limited).
        measure: ``module:function`` measuring a candidate before training, ``f(candidate)
            -> float`` (None: observed by training, like accuracy).
        always: measured and recorded for every candidate that fits, whatever the objectives
            (params and FLOPs: the report and the export show them).
        fmt: a value as users read it.
        hardware: measured on the device the search targets, in a context the study records
            (latency, memory: :mod:`nas.hardware`); counts are the same everywhere.
    """

    name: str
    field: str
    direction: Direction
    label: str
    dashboard: str
    unit: str = ""
    limit: Limit | None = None
    measure: str | None = None
    always: bool = False
    fmt: Callable[[float], str] = human
    hardware: bool = False

    @property
    def before_training(self) -> bool:
        """Known before any weights exist (cheap: a candidate over its limit is rejected)."""
        return self.measure is not None

    def show(self, value: float | None) -> str:
        """``1.20M params``, ``3.1 ms``: a value with its label or unit."""
        if value is None:
            return "?"
        text = self.fmt(value)
        return f"{text} {self.unit}" if self.unit else f"{text} {self.label}"

    @property
    def heading(self) -> str:
        """A table column's heading: ``params``, ``latency ms``."""
        return f"{self.label} {self.unit}" if self.unit else self.label

    def over(self, value: float, limit: float) -> str:
        """Why a candidate is rejected: ``6.10M params > limit 5.00M``, ``3.10 ms latency >
        limit 2.00 ms``."""
        if not self.unit:
            return over_limit(value, limit, self.label)
        text = f"{self.show(value)} {self.label} > limit {self.show(limit)}"
        return f"≥{text} (given up after the warm-up)" if isinstance(value, AtLeast) else text

    def measurer(self) -> Callable[[Any], float]:
        """The function that measures a candidate (imported on first use).

        Raises:
            ValueError: for a metric observed by training.
        """
        if self.measure is None:
            raise ValueError(f"metric {self.name!r} is observed by training, not measured")
        module, _, name = self.measure.partition(":")
        found: Callable[[Any], float] = getattr(importlib.import_module(module), name)
        return found


#: Every metric a search can optimise or limit, in the order they are measured (cheapest
#: first: a candidate over the parameter limit never has its FLOPs traced).
METRICS: Registry[Metric] = Registry("objective")


def register(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (a name or limit setting taken twice is refused;
    the same metric again, as a plugin module that registers what its entry point names, is
    no change)."""
    if metric.name in METRICS and METRICS[metric.name] is metric:
        return metric
    taken = {m.limit.setting for _, m in METRICS.items() if m.limit is not None}
    if metric.limit is not None and metric.limit.setting in taken:
        raise KeyError(f"limit setting {metric.limit.setting!r} is already registered")
    METRICS.add(metric.name, metric)
    return metric


register(
    Metric(
        ACCURACY,
        field="accuracy",
        direction="maximize",
        label="val accuracy",
        dashboard="val_accuracy",
        fmt=lambda v: f"{v:.4f}",
    )
)
register(
    Metric(
        "params",
        field="params",
        direction="minimize",
        label="params",
        dashboard="params",
        limit=Limit(
            "param_limit",
            "hard parameter limit: 5M, 4.5e6, 500k ...",
            default=5_000_000,
            parse=lambda v: parse_count(v, "parameter limit"),
        ),
        measure="nas.counting:count_params",
        always=True,
    )
)
register(
    Metric(
        "flops",
        field="flops",
        direction="minimize",
        label="FLOPs",
        dashboard="flops",
        limit=Limit(
            "flops_limit",
            "hard FLOPs limit per image (1 multiply-add = 1 flop): 500M, 2G ...; over it a "
            "candidate is rejected before training, like the parameter limit, and the sampler "
            "learns it",
            parse=lambda v: parse_count(v, "FLOPs limit"),
        ),
        measure="nas.counting:count_flops",
        always=True,
    )
)

register(
    Metric(
        "latency",
        field="latency",
        direction="minimize",
        label="latency",
        dashboard="latency_ms",
        unit="ms",
        limit=Limit(
            "latency_limit",
            "hard limit on the time of one forward pass of a batch (--latency-batch where a "
            "command takes it, else 1 image on CPU, 32 on CUDA), measured before training on "
            "the device the search runs on: 2ms, 500us, 0.01s (a bare "
            "number is milliseconds); over it a candidate is rejected and the sampler learns it",
            parse=lambda v: parse_duration_ms(v, "latency limit"),
        ),
        measure="nas.hardware.measure:measure_latency",
        fmt=human_ms,
        hardware=True,
    )
)
register(
    Metric(
        "memory",
        field="memory",
        direction="minimize",
        label="peak memory",
        dashboard="memory_mb",
        unit="MB",
        limit=Limit(
            "memory_limit",
            "hard limit on the peak memory of one forward pass of a batch (as for "
            "--latency-limit): 300MB, 1.5GB, 512MiB; a bare number is megabytes (measured on "
            "CUDA, estimated from the tensor sizes on CPU)",
            parse=lambda v: parse_bytes(v, "memory limit") / 1e6,
        ),
        measure="nas.hardware.measure:measure_memory",
        fmt=lambda v: f"{v:.3g}",
        hardware=True,
    )
)


def costs() -> list[Metric]:
    """The metrics accuracy can be traded against (minimised), in registry order."""
    return [m for _, m in METRICS.items() if m.direction == "minimize"]


def hardware() -> list[Metric]:
    """The metrics measured on a device, with a recorded context (latency, memory)."""
    return [m for _, m in METRICS.items() if m.hardware]


def limited() -> list[Metric]:
    """The metrics that can be limited, in registry order."""
    return [m for _, m in METRICS.items() if m.limit is not None]


def by_limit(setting: str) -> Metric:
    """The metric whose limit is the setting ``setting`` (``param_limit`` -> params)."""
    for m in limited():
        assert m.limit is not None
        if m.limit.setting == setting:
            return m
    raise KeyError(setting)


def objectives_help() -> str:
    """``--objectives``' help, from the registry."""
    names = ", ".join(m.name for m in costs())
    return (
        f"what to optimise: {ACCURACY}, alone or traded against any of {names} "
        f"(comma-separated, accuracy first: {ACCURACY},{costs()[0].name})"
    )


def parse_objectives(value: Any) -> tuple[str, ...]:
    """``accuracy,params`` (or a list of names) -> ("accuracy", "params").

    Raises:
        NasError: naming what is wrong and the valid names.
    """
    text = ",".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    valid = ", ".join(m.name for m in costs())
    if not names or names[0] != ACCURACY:
        hint = did_you_mean(names[0], [ACCURACY]) if names else ""
        raise NasError(
            f"objectives {text!r} must start with {ACCURACY}{hint or f'; then any of {valid}'}"
        )
    if ACCURACY in names[1:]:
        raise NasError(f"objectives {text!r} name {ACCURACY} twice")
    for name in names[1:]:
        if name not in METRICS or METRICS[name].direction != "minimize":
            hint = did_you_mean(name, [m.name for m in costs()])
            raise NasError(
                f"unknown objective {name!r} in {text!r}"
                + (hint or f"; valid after accuracy: {valid} (one of your own: {NOT_REGISTERED})")
            )
    if len(set(names)) != len(names):
        raise NasError(f"objectives {text!r} name one twice")
    return names


def metrics_of(names: Iterable[str]) -> list[Metric]:
    """The metrics named, in the order given."""
    return [METRICS[n] for n in names]


def check_objectives(study: Any, objectives: tuple[str, ...]) -> None:
    """Refuse an Optuna study whose directions (or metric names) are not those of
    ``objectives``: resuming it would score candidates on other terms.

    Raises:
        StorageError: in one line, naming what the study optimises.
    """
    known = metrics_of(o for o in objectives if o in METRICS)
    want = [m.dashboard for m in known]
    have = study.metric_names or []
    directions = [d.name.lower() for d in study.directions]
    if directions != [m.direction for m in known] or (have and have != want):
        # named as --objectives takes them (the study's dashboard names read back)
        names = {m.dashboard: m.name for _, m in METRICS.items()}
        had = ",".join(names.get(h, h) for h in have)
        had = f"objectives {had}" if have else f"unnamed objectives ({','.join(directions)})"
        raise StorageError(
            f"study {study.study_name!r} exists with {had}, not "
            f"{','.join(m.name for m in known)}; choose another --study"
        )


#: The entry-point group in which installed packages add metrics (see the module doc).
PLUGIN_GROUP = "nas.objectives"

#: Why a search names an objective this process does not know, and how to make it known.
NOT_REGISTERED = (
    "register its Metric in this process (nas.objectives.register) or install the package "
    f"that adds it as an entry point of {PLUGIN_GROUP!r}"
)


def load_plugins() -> list[str]:
    """Register the metrics installed packages add (entry points of :data:`PLUGIN_GROUP`,
    each a :class:`Metric` or a list of them); returns their names. One that cannot be
    loaded is left out with a ``warning:`` line naming it: every other command still runs, and a
    study that needs it is refused (:func:`unknown_objectives`)."""
    from importlib.metadata import entry_points

    added = []
    for point in entry_points(group=PLUGIN_GROUP):
        try:
            found = point.load()
            for metric in found if isinstance(found, list | tuple) else [found]:
                if not isinstance(metric, Metric):
                    raise TypeError(f"it gives a {type(metric).__name__}, not a Metric")
                added.append(register(metric).name)
        except Exception as exc:  # a user's package: any failure is theirs to read
            print(
                f"warning: objective plugin {point.name!r} ({point.value}) is not loaded: {exc}",
                file=sys.stderr,
            )
    return added


def unknown_objectives(names: Iterable[str], study_name: str) -> None:
    """Refuse a study whose recorded objectives name a metric this process does not know:
    read as another, its best trial and front would be wrong.

    Raises:
        NasError: in one line, naming the metric and how to make it known.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise NasError(
            f"study {study_name!r} optimises {', '.join(map(repr, unknown))}, which no metric "
            f"registered here measures: {NOT_REGISTERED}"
        )


load_plugins()
