"""Dry runs of a search space: sample, count and check the budget, train nothing."""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import optuna

from nas.budget import Budget
from nas.config import ArchConfig
from nas.counting import count
from nas.errors import ConfigError
from nas.objectives import METRICS, hardware
from nas.space import SearchSpace


def _label(metric: str | None) -> str | None:
    """How a report names what rejected a candidate (``params``, ``FLOPs``)."""
    return METRICS[metric].label if metric else None


@dataclass
class Candidate:
    """One sampled point: its config, its counts and whether it fits the limit."""

    arch: ArchConfig | None
    params: int | None
    flops: int | None
    feasible: bool
    reason: str | None = None
    #: What rejected it: ``params``, ``FLOPs``, ``latency``, ``peak memory`` or ``cannot
    #: build`` (None: it fits).
    rejected_by: str | None = None
    #: Measured latency (ms) and peak memory (MB) by metric name (``nas sample --latency``).
    measured: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict() if self.arch else None,
            "params": self.params,
            "flops": self.flops,
            **(self.measured or {}),
            "feasible": self.feasible,
            "reason": self.reason,
        }


@dataclass
class SampleReport:
    """What a dry run found."""

    space: str
    limit: int | None
    seed: int
    flops_limit: int | None
    candidates: list[Candidate]
    params_seconds: float
    flops_seconds: float
    #: Where latency and memory were measured (None: not measured), and what it cost.
    hardware: Any = None
    hardware_seconds: float = 0.0
    hardware_limits: dict[str, float] | None = None

    @property
    def by_attention(self) -> dict[str, tuple[int, int]]:
        """(sampled, feasible) candidates by attention type."""
        return _tally(self.candidates, lambda arch: arch.attention.type)

    @property
    def by_placement(self) -> dict[str, tuple[int, int]]:
        """(sampled, feasible) candidates by attention placement (``-``: no attention)."""
        return _tally(
            self.candidates,
            lambda arch: "-" if arch.attention.type == "none" else arch.attention.placement,
        )

    @property
    def rejection_rate(self) -> float:
        n = len(self.candidates)
        return sum(not c.feasible for c in self.candidates) / n if n else 0.0

    @property
    def rejected_by(self) -> dict[str, int]:
        """How many candidates each limit rejected (``cannot build``: invalid points)."""
        reasons = Counter(c.rejected_by for c in self.candidates if c.rejected_by)
        kinds = ("params", "FLOPs", *(m.label for m in hardware()), "cannot build")
        return {k: reasons[k] for k in kinds}

    def to_dict(self) -> dict[str, Any]:
        feasible = [c for c in self.candidates if c.feasible]
        return {
            "space": self.space,
            "param_limit": self.limit,
            "flops_limit": self.flops_limit,
            "seed": self.seed,
            "n": len(self.candidates),
            "feasible": len(feasible),
            "rejection_rate": self.rejection_rate,
            "rejected_by": self.rejected_by,
            "params": distribution([c.params for c in self.candidates if c.params is not None]),
            "flops": distribution([c.flops for c in self.candidates if c.flops is not None]),
            "feasible_params": distribution([c.params for c in feasible if c.params is not None]),
            **{
                m.name: distribution(
                    [
                        c.measured[m.name]
                        for c in self.candidates
                        if c.measured and m.name in c.measured
                    ]
                )
                for m in hardware()
                if self.hardware is not None
            },
            "hardware": None if self.hardware is None else self.hardware.to_dict(),
            "hardware_limits": self.hardware_limits,
            "by_attention": {
                k: {"sampled": a, "feasible": b} for k, (a, b) in self.by_attention.items()
            },
            "by_placement": {
                k: {"sampled": a, "feasible": b} for k, (a, b) in self.by_placement.items()
            },
            "seconds": {
                "params": self.params_seconds,
                "flops": self.flops_seconds,
                "hardware": self.hardware_seconds,
            },
            "candidates": [c.to_dict() for c in self.candidates],
        }


def _tally(
    candidates: Sequence[Candidate], group: Callable[[ArchConfig], str]
) -> dict[str, tuple[int, int]]:
    """(sampled, feasible) counts of the buildable candidates by ``group`` of their config,
    in sorted order of the groups."""
    sampled: Counter[str] = Counter()
    feasible: Counter[str] = Counter()
    for c in candidates:
        if c.arch is None:
            continue
        key = group(c.arch)
        sampled[key] += 1
        if c.feasible:
            feasible[key] += 1
    return {k: (sampled[k], feasible[k]) for k in sorted(sampled)}


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    """Record in ``seconds[phase]`` how long the ``with`` body took."""
    start = time.perf_counter()
    yield
    seconds[phase] = time.perf_counter() - start


def distribution(values: Sequence[float]) -> dict[str, float]:
    """min, quartiles, max and mean of ``values`` (empty dict when there are none)."""
    if not values:
        return {}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "min": ordered[0],
        "p25": q[0],
        "median": q[1],
        "p75": q[2],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def _flops_of(arch: ArchConfig) -> int:
    result = count(arch).flops
    assert result is not None
    return result


def _one_thread() -> None:
    """Pool initializer: one torch thread per worker process, no oversubscription."""
    import torch

    torch.set_num_threads(1)


def sample(
    space: SearchSpace,
    n: int,
    *,
    seed: int = 0,
    limit: int | None = None,
    flops_limit: int | None = None,
    in_channels: int = 3,
    input_size: int = 32,
    num_classes: int = 10,
    flops: bool = True,
    all_flops: bool = False,
    workers: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    hardware: Any = None,
    hardware_limits: dict[str, float] | None = None,
) -> SampleReport:
    """Sample ``n`` points of ``space`` at random and count each one.

    Args:
        space: the search space.
        n: number of candidates.
        seed: seed of Optuna's ``RandomSampler``.
        limit: parameter limit; candidates above it are infeasible.
        flops_limit: FLOPs limit; candidates within ``limit`` but above it are infeasible
            (needs ``flops``).
        flops: count FLOPs of the feasible candidates too (fvcore traces, spread over
            ``workers`` processes); rejected ones keep ``flops=None``, as in a search.
        all_flops: count FLOPs of the rejected candidates as well.
        workers: processes for FLOP counting (default: all cores; 1 = in this process).
        progress: called as ``progress(phase, done, total)``.
        hardware: a :class:`nas.hardware.context.HardwareContext`: measure the latency and
            peak memory of every candidate that fits the counts there, one after the other
            in this process (None: do not measure).
        hardware_limits: limits on ``latency`` (ms) and ``memory`` (MB); over one, a
            candidate is rejected, as in a search.

    Raises:
        ConfigError: for a FLOPs limit without FLOP counts.
        NasError: for a parameter or FLOPs limit below the space's cheapest candidate.
    """
    if flops_limit is not None and not flops:
        raise ConfigError("a FLOPs limit needs FLOP counts: drop --no-flops")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    limits = {"params": limit, "flops": flops_limit}
    budget = Budget({k: v for k, v in limits.items() if v is not None})
    # a count limit no candidate meets is refused, as nas search refuses it, rather than
    # shown as 100% rejected (latency and memory limits: each candidate says so when measured)
    shape = SimpleNamespace(in_channels=in_channels, input_size=input_size, num_classes=num_classes)
    budget.check_reachable(space, shape)
    on_params = Budget({"params": limit} if limit is not None else {})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed % 2**32))  # any int
    candidates: list[Candidate] = []
    seconds: dict[str, float] = {}
    with _timed(seconds, "params"):
        for i in range(n):
            trial = study.ask()
            try:
                arch = space.suggest(
                    trial, in_channels=in_channels, input_size=input_size, num_classes=num_classes
                )
            except ConfigError as exc:
                candidates.append(
                    Candidate(None, None, None, False, f"cannot build: {exc}", "cannot build")
                )
                continue
            verdict = on_params.judge({"params": count(arch, flops=False).params})
            candidates.append(
                Candidate(
                    arch,
                    verdict.params,
                    None,
                    verdict.fits,
                    verdict.reason,
                    _label(verdict.rejected_by),
                )
            )
            if progress:
                progress("params", i + 1, n)
    with _timed(seconds, "flops"):
        if flops:
            _count_flops(candidates, all_flops, workers, progress)
    if flops_limit is not None:
        for c in candidates:
            if c.feasible and c.params is not None:
                verdict = budget.judge({"params": c.params, "flops": float(c.flops or 0)})
                c.feasible, c.reason = verdict.fits, verdict.reason
                c.rejected_by = _label(verdict.rejected_by)
    with _timed(seconds, "hardware"):
        if hardware is not None:
            _measure(candidates, hardware, hardware_limits or {}, progress)
    return SampleReport(
        space=space.name,
        limit=limit,
        flops_limit=flops_limit,
        seed=seed,
        candidates=candidates,
        params_seconds=seconds["params"],
        flops_seconds=seconds["flops"],
        hardware=hardware,
        hardware_seconds=seconds["hardware"],
        hardware_limits=hardware_limits,
    )


def _measure(
    candidates: list[Candidate],
    context: Any,
    limits: dict[str, float],
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Measure latency and peak memory of the candidates that fit so far (each
    architecture once), rejecting those over ``limits``."""
    from nas.hardware.cache import HardwareMeter

    meter = HardwareMeter(context, ("latency", "memory"), limits=limits)
    budget = Budget(limits)
    todo = [c for c in candidates if c.feasible and c.arch is not None]
    for done, c in enumerate(todo, start=1):
        values = {m.name: meter(c.arch, m.name) for m in hardware()}
        c.measured = values
        verdict = budget.judge(values)
        c.feasible, c.reason, c.rejected_by = (
            verdict.fits,
            verdict.reason,
            _label(verdict.rejected_by),
        )
        if progress:
            progress("latency", done, len(todo))


def _count_flops(
    candidates: list[Candidate],
    all_flops: bool,
    workers: int | None,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Count the FLOPs of the feasible candidates (all buildable ones with ``all_flops``),
    over ``workers`` processes when there are many."""
    todo = [c for c in candidates if c.arch is not None and (c.feasible or all_flops)]
    archs = [c.arch for c in todo if c.arch is not None]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(archs) >= 32:
        with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
            results = pool.map(_flops_of, archs, chunksize=max(1, len(archs) // (8 * workers)))
            for done, (cand, value) in enumerate(zip(todo, results, strict=True), start=1):
                cand.flops = value
                if progress:
                    progress("flops", done, len(todo))
    else:
        for done, cand in enumerate(todo, start=1):
            assert cand.arch is not None
            cand.flops = _flops_of(cand.arch)
            if progress:
                progress("flops", done, len(todo))
