"""Samplers by name, each entry saying everything a sampler means to ``nas``.

A :class:`SamplerSpec` says how the sampler is built for a study (from the seed and the
budget of trained trials), what its start-up phase is (the candidates it draws at random
before it models anything) and how one of its trials is classified, ``startup`` or
``guided``: the search records the class on each trial (``sampled_by``), the summary and the
report compare the two groups, and studies from before the record are classified the same
way afterwards. Nothing else in ``nas`` knows a sampler's start-up rule.

Light: the specs build their samplers and read their bookkeeping through imports made when
they are called, so ``--help`` lists the names at no cost.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.registry import Registry

if TYPE_CHECKING:
    import optuna

    from nas.study.record import TrialRecord

#: Finished trials (COMPLETE or PRUNED, rejections included) TPE samples at random before it
#: models anything (its ``n_startup_trials``): the study's random start-up.
TPE_STARTUP = 10

#: Classify a trial: (its record, how many trials had finished when it was sampled) ->
#: ``startup`` or ``guided``.
Classify = Callable[["TrialRecord", int], str]


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler, as data.

    Attributes:
        name: ``--sampler``'s value.
        help: what it does, for ``--help``.
        build: the sampler for a study, from (seed, trained trials wanted, number of
            objectives).
        startup: its start-up phase in words.
        classify: ``startup`` or ``guided`` for one of its trials (see :data:`Classify`).
        sized: whether it is built for the budget of trained trials (NSGA-II's population,
            the local search's start-up): then a study of 100 trials is not the first 100
            trials of a study of 200.
    """

    name: str
    help: str
    build: Callable[[int, int, int], optuna.samplers.BaseSampler]
    startup: str
    classify: Classify
    sized: bool = False


#: Optuna samplers by name (``--sampler``).
SAMPLERS: Registry[SamplerSpec] = Registry("sampler")


def _tpe(seed: int, trials: int, objectives: int = 1) -> optuna.samplers.BaseSampler:
    import optuna

    with warnings.catch_warnings():  # multivariate, group, constant_liar: "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            constant_liar=True,
            n_startup_trials=TPE_STARTUP,
        )


def _by_count(startup: int) -> Classify:
    """Start-up while fewer than ``startup`` trials had finished when it was sampled."""

    def classify(record: TrialRecord, finished_before: int) -> str:
        return "startup" if finished_before < startup else "guided"

    return classify


def nsga2_population(trials: int) -> int:
    """NSGA-II's population for a budget of ``trials`` trained trials: a quarter of it,
    between 4 and 50, so that even the default budget (20) runs several generations (rejected
    candidates fill generations too, see :class:`nas.study.nsga2.RejectionAwareNSGAII`)."""
    return max(4, min(50, round(trials / 4)))


def _nsga2(seed: int, trials: int, objectives: int = 1) -> optuna.samplers.BaseSampler:
    from nas.study.nsga2 import RejectionAwareNSGAII

    return RejectionAwareNSGAII(seed=seed, population_size=nsga2_population(trials))


def _nsga2_classify(record: TrialRecord, finished_before: int) -> str:
    """Start-up in the first generation (drawn at random), read under the generation key the
    sampler itself writes (:meth:`RejectionAwareNSGAII.generation_of`)."""
    from nas.study.nsga2 import RejectionAwareNSGAII

    generation = RejectionAwareNSGAII.generation_of(record)
    if generation is None:
        return "startup"  # sampled otherwise (before a change of sampler): not modelled
    return "startup" if generation <= 0 else "guided"


def _local(seed: int, trials: int, objectives: int = 1) -> optuna.samplers.BaseSampler:
    from nas.study.local import LocalSearchSampler, local_init

    return LocalSearchSampler(seed=seed, n_init=local_init(trials), model=_tpe(seed, trials))


def _auto(seed: int, trials: int, objectives: int = 1) -> optuna.samplers.BaseSampler:
    """``local`` for one objective, ``tpe`` for several (chosen on NAS-Bench-201, see
    docs/evidence/search-vs-random.md)."""
    return (_local if objectives == 1 else _tpe)(seed, trials, objectives)


def _auto_classify(record: TrialRecord, finished_before: int) -> str:
    """``local``'s recorded phase where there is one, else TPE's start-up count."""
    from nas.study.local import LocalSearchSampler

    phase = LocalSearchSampler.phase_of(record)
    return phase if phase is not None else _by_count(TPE_STARTUP)(record, finished_before)


def _local_classify(record: TrialRecord, finished_before: int) -> str:
    """The phase the sampler recorded when it planned the trial."""
    from nas.study.local import LocalSearchSampler

    return LocalSearchSampler.phase_of(record) or "startup"


def _random(seed: int, trials: int, objectives: int = 1) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS.add(
    "auto",
    SamplerSpec(
        "auto",
        "local with one objective, tpe with several (so tpe for the default "
        "accuracy,params), chosen on NAS-Bench-201: docs/evidence/search-vs-random.md",
        _auto,
        "local's or TPE's",
        _auto_classify,
        sized=True,
    ),
)
SAMPLERS.add(
    "tpe",
    SamplerSpec(
        "tpe",
        "multivariate TPE; learns the limits from rejections",
        _tpe,
        f"its first {TPE_STARTUP} finished trials (rejections included) are drawn at random",
        _by_count(TPE_STARTUP),
    ),
)
SAMPLERS.add(
    "nsga2",
    SamplerSpec(
        "nsga2",
        "NSGA-II, population a quarter of --trials, 4..50; rejected candidates count as "
        "infeasible members of their generation",
        _nsga2,
        "its first generation is drawn at random",
        _nsga2_classify,
        sized=True,
    ),
)
SAMPLERS.add(
    "local",
    SamplerSpec(
        "local",
        "best-first neighbourhood search: climbs from the most accurate candidates by "
        "one-step changes and swaps of like parameters, re-checking an incumbent once; with "
        "several objectives, from the Pareto front, half its proposals from TPE",
        _local,
        "its first candidates, a fifth of --trials (at least 4), are drawn at random",
        _local_classify,
        sized=True,
    ),
)
SAMPLERS.add(
    "random",
    SamplerSpec(
        "random",
        "every candidate drawn at random",
        _random,
        "every trial is drawn at random",
        lambda record, finished_before: "startup",
    ),
)


def classify(record: TrialRecord, sampler: str, finished_before: int) -> str:
    """How a trial's candidate was chosen: ``retry`` (a dead worker's trial, repeated),
    ``enqueued`` (a preset), else what ``sampler``'s entry says (``startup`` or ``guided``),
    given ``finished_before`` trials (COMPLETE or PRUNED) had finished when it was sampled."""
    if record.retry_of is not None:
        return "retry"
    if record.enqueued:
        return "enqueued"
    return SAMPLERS[sampler].classify(record, finished_before)


def register_baseline(
    name: str, help: str, build: Callable[[int, int, int], optuna.samplers.BaseSampler]
) -> None:
    """Register a sampler from outside ``nas`` (a benchmark's baseline) once: built by
    ``build`` (seed, trials, objectives), every trial counted as guided (its start-up phase
    is its own business)."""
    if name not in SAMPLERS:
        SAMPLERS.add(
            name,
            SamplerSpec(name, help, build, "its own", lambda record, finished: "guided"),
        )


def make_sampler(
    name: str, seed: int, trials: int = 20, objectives: int = 1
) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` (``nas search --sampler``: auto, tpe, nsga2, local, random) seeded
    with ``seed``, sized for ``trials`` trained trials, for a study of ``objectives``
    objectives: ``nas.make_sampler("nsga2", seed=0, trials=40, objectives=2)`` for a user's
    own study whose objective calls :func:`nas.suggest`. Each learns from the rejected
    candidates, as in ``nas search`` (Optuna's own NSGA-II does not: it builds its
    generations from COMPLETE trials only).

    Raises:
        NasError: for an unknown sampler name (naming the closest and every valid one), or
            a seed that is not an integer, or trials or objectives that are not positive
            integers.
    """
    sampler = SAMPLERS[name]
    for what, value, least in (
        ("seed", seed, 0),
        ("trials", trials, 1),
        ("objectives", objectives, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
            kind = "a non-negative integer" if least == 0 else "a positive integer"
            raise NasError(f"{what} must be {kind}, got {value!r}")
    return sampler.build(seed, trials, objectives)


def sampler_help() -> str:
    """``--sampler``'s help, from the registry."""
    return "Optuna sampler: " + "; ".join(
        f"{n} ({s.help}; start-up: {s.startup})" for n, s in SAMPLERS.items()
    )
