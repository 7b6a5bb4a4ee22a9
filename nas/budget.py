"""The budget check: one verdict on whether a candidate fits every limit of a study.

A search's objective, ``nas.suggest``, ``nas sample``, ``--enqueue-presets``, a fidelity panel
and the check that a limit is not below the space's cheapest candidate all ask
:meth:`Budget.check`, so the rule is written once: the limited metrics of
:data:`nas.objectives.METRICS` are measured in the registry's order, cheapest first
(parameters on the meta device, about a millisecond; FLOPs by an fvcore trace, tens of
milliseconds), and measuring stops at the first limit a candidate is over, so a candidate
over the parameter limit never has its FLOPs traced. Metrics wanted without a limit (for
the record, or as objectives) are measured only for a candidate that fits
(:meth:`Budget.complete`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nas.errors import ConfigError, NasError
from nas.objectives import METRICS

if TYPE_CHECKING:
    from nas.space import SearchSpace


class Shape(Protocol):
    """What a budget check needs of the data: the shape of its images and its classes
    (:class:`nas.data.ImageData`, or the shape a user's own objective gives)."""

    @property
    def in_channels(self) -> int: ...

    @property
    def input_size(self) -> int: ...

    @property
    def num_classes(self) -> int: ...


#: Measure one metric of a candidate: (candidate, metric name) -> value.
Measure = Callable[[Any, str], float]


def measure_metric(candidate: Any, metric: str) -> float:
    """The registry's own measurement of ``metric`` (:attr:`nas.objectives.Metric.measure`)."""
    return METRICS[metric].measurer()(candidate)


@dataclass(frozen=True)
class Verdict:
    """Whether a candidate fits, and why not.

    Attributes:
        values: what was measured, by metric name (a metric after the one that rejected the
            candidate is not measured).
        violations: how far over each checked limit it is, by metric (> 0: over), in units of
            the first limit checked ((value - limit) / limit * that limit), so that NSGA-II's
            sum of violations weighs every limit alike and the parameter violation stays in
            parameters.
        rejected_by: the metric whose limit rejected it (None: it fits).
        reason: the rejection reason, e.g. ``6.10M params > limit 5.00M`` (None: it fits).
    """

    values: dict[str, float] = field(default_factory=dict)
    violations: dict[str, float] = field(default_factory=dict)
    rejected_by: str | None = None
    reason: str | None = None

    @property
    def fits(self) -> bool:
        return self.rejected_by is None

    @property
    def params(self) -> int:
        """The parameter count (every architecture's first measurement)."""
        return int(self.values["params"])

    @property
    def flops(self) -> int | None:
        """FLOPs per image (None: not measured)."""
        value = self.values.get("flops")
        return None if value is None else int(value)


@dataclass(frozen=True)
class Budget:
    """A study's limits, by metric name (``{"params": 5_000_000, "flops": 5e8}``)."""

    limits: Mapping[str, float] = field(default_factory=dict)

    def _order(self) -> list[str]:
        """The limited metrics in registry order (cheapest first)."""
        return [name for name, _ in METRICS.items() if name in self.limits]

    def judge(self, values: Mapping[str, float]) -> Verdict:
        """The verdict for measurements already made (a metric that is not in ``values`` is
        not checked: it was not measured because an earlier limit rejected the candidate).

        Raises:
            ValueError: when a limited metric is missing while every earlier one fits.
        """
        order = self._order()
        scale = self.limits[order[0]] if order else 1.0
        violations: dict[str, float] = {}
        for name in order:
            if name not in values:
                raise ValueError(f"the limit on {name} needs the candidate's {name}")
            limit, value = self.limits[name], values[name]
            violations[name] = (
                value - limit if name == order[0] else (value - limit) / limit * scale
            )
            if value > limit:
                reason = METRICS[name].over(value, limit)
                return Verdict(dict(values), violations, name, reason)
        return Verdict(dict(values), violations)

    def check(
        self, candidate: Any, *, measure: Measure = measure_metric, wanted: Iterable[str] = ()
    ) -> Verdict:
        """The verdict on ``candidate``: its limited metrics measured cheapest first, up to
        the first it is over; for a candidate that fits, ``wanted`` metrics too."""
        values: dict[str, float] = {}
        for name in self._order():
            values[name] = measure(candidate, name)
            if values[name] > self.limits[name]:
                return self.judge(values)
        return self.complete(candidate, self.judge(values), wanted, measure)

    def complete(
        self,
        candidate: Any,
        verdict: Verdict,
        wanted: Iterable[str],
        measure: Measure = measure_metric,
    ) -> Verdict:
        """``verdict`` with the ``wanted`` metrics it lacks measured (registry order)."""
        names = set(wanted)
        values = dict(verdict.values)
        for name, _ in METRICS.items():
            if name in names and name not in values:
                values[name] = measure(candidate, name)
        return Verdict(values, verdict.violations, verdict.rejected_by, verdict.reason)

    def check_reachable(
        self,
        space: SearchSpace,
        data: Shape,
        *,
        names: Mapping[str, str] | None = None,
        measure: Measure | None = None,
    ) -> None:
        """Refuse limits below the space's cheapest candidate, in one line. Counts only,
        unless ``measure`` is given: a hardware limit needs a measurement of every
        combination on the search's device (seconds to tens of seconds), so the search
        checks it only once a run of rejections suggests it (``measure``: the study's
        hardware meter). ``names``: each limit's setting as the user names it
        (``param_limit`` from Python; :attr:`nas.settings.Resolved.names`), else its flag.

        Raises:
            NasError: naming the limit, the cheapest candidate and its value.
        """
        for name in self._order():
            limit = self.limits[name]
            metric = METRICS[name]
            if metric.hardware and measure is None:
                continue
            cheapest, summary = cheapest_candidate(space, data, name, measure or measure_metric)
            if cheapest > limit:
                assert metric.limit is not None
                shown = metric.show(limit) if metric.unit else metric.fmt(limit)  # 0.3 MB
                raise NasError(
                    f"the {metric.label} limit {shown} is below the cheapest candidate "
                    f"of space {space.name!r} ({metric.show(cheapest)}: {summary}); "
                    f"raise {(names or {}).get(metric.limit.setting, metric.limit.flag)} "
                    "or use a smaller space"
                )


class _MinimalTrial:
    """A stand-in trial that answers every suggestion with its cheapest value, except the
    categorical ones named in ``choices`` (used to find the space's cheapest candidate).
    A stage's stride is its smallest (fewest parameters: no projection shortcut) unless
    ``downsample``, then its largest (fewest FLOPs, least time and memory: the stage runs at
    a lower resolution)."""

    def __init__(self, choices: dict[str, Any], downsample: bool = False) -> None:
        self.choices = choices
        self.downsample = downsample

    def _largest(self, name: str) -> bool:
        return name == "reduction" or (self.downsample and name.endswith("_stride"))

    def suggest_categorical(self, name: str, options: list[Any]) -> Any:
        if name in self.choices:
            return self.choices[name]
        numeric = [o for o in options if isinstance(o, int | float) and not isinstance(o, bool)]
        if self._largest(name) and numeric:
            return max(numeric)
        return min(numeric) if len(numeric) == len(options) else options[0]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return high if self._largest(name) else low

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low


def cheapest_candidate(
    space: SearchSpace, data: Shape, metric: str = "params", measure: Measure = measure_metric
) -> tuple[float, str]:
    """The value of ``metric`` and the summary of the space's cheapest candidate by it
    (numeric dimensions at their cheapest, the strides at both ends, every combination of
    block, shortcut, attention type and placement)."""
    dims = {
        "block": space.backbone["block"].values(),
        "shortcut": space.backbone["shortcut"].values(),
        "attention": space.attention["type"].values(),
        "placement": space.attention["placement"].values(),
    }
    best: tuple[float, str] | None = None
    why = ""  # the last reason a candidate could not be built
    for downsample, combo in itertools.product((False, True), itertools.product(*dims.values())):
        trial = _MinimalTrial(dict(zip(dims, combo, strict=True)), downsample)
        try:
            arch = space.suggest(
                trial,  # type: ignore[arg-type]
                in_channels=data.in_channels,
                input_size=data.input_size,
                num_classes=data.num_classes,
            )
        except ConfigError as exc:
            why = str(exc)
            continue
        cost = measure(arch, metric)
        if best is None or cost < best[0]:
            best = (cost, arch.summary())
    if best is None:
        raise NasError(f"no candidate of space {space.name!r} can be built: {why}")
    return best
