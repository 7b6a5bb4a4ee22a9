"""Hardware measurements kept in the study, so that each architecture is measured once.

A search measures latency and memory before training (the budget check asks for them like
for parameters); :class:`HardwareMeter` is the measure it asks. A measurement is kept by
architecture and context in the study (:meth:`nas.study.record.StudyRecord.measurements`),
so a repeated architecture, proposed again by this worker or by any other worker of the
study, is not measured again; a worker also remembers what it has read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nas.hardware.context import HardwareContext
from nas.units import AtLeast, plural

#: The metrics :class:`HardwareMeter` measures (the rest go to its fallback).
HARDWARE_METRICS = ("latency", "memory")

#: A far-over-the-limit candidate is rejected after the warm-up when its fastest warm-up run
#: is this many times the latency limit (it records that lower bound, not a median).
GIVE_UP_FACTOR = 1.5

#: Kept beside such a candidate's latency (1.0): its value is the lower bound.
LOWER_BOUND = "latency_lower_bound"


def arch_key(candidate: Any) -> str:
    """A short fingerprint of an architecture (its config dict)."""
    data = candidate.to_dict() if hasattr(candidate, "to_dict") else candidate
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class MeasurementStore:
    """Where measurements are kept: by default only in this process (see
    :class:`StudyMeasurements` for the study's)."""

    def __init__(self) -> None:
        self.memo: dict[str, dict[str, float]] = {}

    def get(self, arch: str) -> dict[str, float] | None:
        return self.memo.get(arch)

    def put(self, arch: str, values: Mapping[str, float]) -> None:
        self.memo[arch] = dict(values)


class StudyMeasurements(MeasurementStore):
    """Measurements kept in a study (shared by its workers), for one context."""

    def __init__(self, study: Any, context: HardwareContext) -> None:
        super().__init__()
        self.study = study
        self.context = context.key

    def _record(self) -> Any:
        from nas.study.record import StudyRecord

        return StudyRecord(self.study)

    def get(self, arch: str) -> dict[str, float] | None:
        if arch not in self.memo:
            self.memo.update(self._record().measurements(self.context))
        return self.memo.get(arch)

    def put(self, arch: str, values: Mapping[str, float]) -> None:
        super().put(arch, values)
        self._record().record_measurement(self.context, arch, values)


class HardwareMeter:
    """Measures latency and memory of candidates in one context, each architecture once.

    Args:
        context: where and how to measure.
        metrics: the hardware metrics to measure together when a candidate is first measured
            (those the study limits or optimises).
        store: where measurements are kept (default: this process only).
        limits: the study's limits by metric (a latency limit lets a far-over candidate be
            rejected after its warm-up).
        fallback: the measure of every other metric.
    """

    def __init__(
        self,
        context: HardwareContext,
        metrics: Iterable[str] = HARDWARE_METRICS,
        *,
        store: MeasurementStore | None = None,
        limits: Mapping[str, float] | None = None,
        fallback: Callable[[Any, str], float] | None = None,
    ) -> None:
        self.context = context
        self.metrics = tuple(m for m in HARDWARE_METRICS if m in set(metrics)) or ("latency",)
        self.store = store or MeasurementStore()
        self.limits = dict(limits or {})
        self.fallback = fallback
        self.measured = 0  #: candidates measured (not served from the store)
        self.served = 0  #: answers served from the store
        self.seconds: list[float] = []  #: what each measurement cost

    def __call__(self, candidate: Any, metric: str) -> float:
        """``metric`` of ``candidate``: a hardware metric from the store or measured now,
        any other from the fallback."""
        if metric not in HARDWARE_METRICS:
            if self.fallback is None:
                raise KeyError(f"{metric!r} is not a hardware metric")
            return self.fallback(candidate, metric)
        key = arch_key(candidate)
        values = self.store.get(key)
        if values is None or metric not in values:
            values = {**(values or {}), **self._measure(candidate, metric)}
            self.store.put(key, values)
        else:
            self.served += 1
        if metric == "latency" and values.get(LOWER_BOUND):
            return AtLeast(values[metric])
        return float(values[metric])

    def describe(self) -> str:
        """``latency and peak memory (estimated) measured on AMD EPYC (cpu), 2 threads, ...``."""
        estimate = " (estimated)" if self.context.estimated_memory else ""
        names = {"latency": "latency", "memory": f"peak memory{estimate}"}
        measured = " and ".join(names[m] for m in self.metrics)
        return f"{measured} measured on {self.context.describe()}"

    def summary(self) -> str:
        """``hardware: 12 candidates measured, 0.31 s each (median; 0.20-1.40 s), 3 answers
        from the study's measurements``; "" when nothing was measured."""
        times = sorted(self.seconds)
        if not times:
            return ""
        median = times[len(times) // 2]
        return (
            f"hardware: {plural(self.measured, 'candidate')} measured, "
            f"{median:.2f} s each (median; {times[0]:.2f}-{times[-1]:.2f} s), "
            f"{plural(self.served, 'answer')} from the study's measurements"
        )

    def _measure(self, candidate: Any, metric: str) -> dict[str, float]:
        from nas.hardware.measure import measure

        wanted = tuple(dict.fromkeys((metric, *self.metrics)))
        limit = self.limits.get("latency")
        m = measure(
            candidate,
            self.context,
            memory="memory" in wanted,
            give_up_above=None if limit is None else limit * GIVE_UP_FACTOR,
        )
        self.measured += 1
        self.seconds.append(m.seconds)
        values = {"latency": m.latency_ms}
        if m.runs == 0:  # given up after the warm-up: the latency is a lower bound
            values[LOWER_BOUND] = 1.0
        if m.memory_bytes is not None:
            values["memory"] = m.memory_bytes / 1e6  # the metric is in megabytes
        return values


def study_meter(
    study: Any,
    context: HardwareContext,
    settings: Any,
    fallback: Callable[[Any, str], float],
) -> HardwareMeter:
    """The meter of a search worker: in the study's checked ``context``
    (:func:`nas.hardware.context.study_context`), measuring the hardware metrics
    ``settings`` optimise or limit, keeping what it measures in the study; ``fallback``
    measures every other metric."""
    return HardwareMeter(
        context,
        {*settings.objectives, *settings.limits},
        store=StudyMeasurements(study, context),
        limits=settings.limits,
        fallback=fallback,
    )
