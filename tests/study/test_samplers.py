"""Samplers own their meaning: each registry entry builds its sampler and classifies its
trials; the search records the class, and a study that did not record it is classified the
same way afterwards, with the real sampler's own bookkeeping."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from benchmarks.rejection_learning import SyntheticScore
from nas.errors import NasError
from nas.search.events import SilentMonitor
from nas.search.loop import search_loop
from nas.search.objective import ArchSpace
from nas.search.settings import SearchSettings
from nas.search.study import new_study
from nas.space import load_space
from nas.study.nsga2 import RejectionAwareNSGAII
from nas.study.record import TrialRecord
from nas.study.samplers import SAMPLERS, TPE_STARTUP, classify, make_sampler
from nas.study.stats import sampled_by


def _without_record(t: FrozenTrial) -> FrozenTrial:
    """``t`` as a study from before ``sampled_by`` was recorded holds it."""
    copy = optuna.trial.create_trial(
        state=t.state,
        values=t.values,
        params=t.params,
        distributions=t.distributions,
        user_attrs={k: v for k, v in t.user_attrs.items() if k != "sampled_by"},
        system_attrs=t.system_attrs,
    )
    copy.number = t.number
    copy.datetime_start, copy.datetime_complete = t.datetime_start, t.datetime_complete
    return copy


def _search_with_workers(space: Path, sampler: str, workers: int, trials: int) -> optuna.Study:
    """The real loop, ``workers`` of them sharing one study in threads (as processes share a
    database), each candidate scored by a synthetic evaluator instead of training."""
    settings = SearchSettings(
        space=str(space), sampler=sampler, trials=trials, limits={"params": 6_000}
    )
    study = new_study(settings)
    study.sampler = make_sampler(sampler, 0, trials, len(settings.objectives))
    arch_space = ArchSpace(load_space(space), 3, 16, 3)

    def worker() -> None:
        loop = search_loop(
            study, settings, arch_space, SyntheticScore(None, settings), SilentMonitor(), print
        )
        loop.run(SilentMonitor())

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return study


def test_nsga2_trials_are_classified_by_the_generation_the_real_sampler_wrote(
    tiny_space: Path,
) -> None:
    """Two workers share an NSGA-II study: every trial's recorded class is its generation's
    (the first is drawn at random), and a study without the record is classified the same
    way, through the key the sampler itself writes (``RejectionAwareNSGAII:generation``, not
    Optuna's ``NSGAIISampler:generation``)."""
    study = _search_with_workers(tiny_space, "nsga2", workers=2, trials=16)
    trials = study.get_trials(deepcopy=False)
    assert sum(TrialRecord(t).is_rejected for t in trials) > 0  # rejections fill generations
    generations = {t.number: RejectionAwareNSGAII.generation_of(TrialRecord(t)) for t in trials}
    assert max(g for g in generations.values() if g is not None) >= 2
    recorded = {t.number: TrialRecord(t).sampled_by for t in trials}
    for number, generation in generations.items():
        assert recorded[number] == ("startup" if generation == 0 else "guided"), number
    assert {"startup", "guided"} <= set(recorded.values())
    assert len({TrialRecord(t).worker for t in trials}) == 1  # one process, two threads
    derived = sampled_by([_without_record(t) for t in trials], "nsga2")
    assert derived == {n: h for n, h in recorded.items() if h is not None}


def test_tpe_trials_are_classified_by_the_trials_finished_when_they_were_sampled(
    tiny_space: Path,
) -> None:
    study = _search_with_workers(tiny_space, "tpe", workers=1, trials=16)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    recorded = [TrialRecord(t).sampled_by for t in trials]
    assert recorded[:TPE_STARTUP] == ["startup"] * TPE_STARTUP
    assert set(recorded[TPE_STARTUP:]) == {"guided"}
    derived = sampled_by([_without_record(t) for t in trials], "tpe")
    assert derived == dict(enumerate(recorded))


def test_every_sampler_entry_builds_its_sampler_and_classifies() -> None:
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, 0.5)
    record = TrialRecord(study.trials[0])
    for name, spec in SAMPLERS.items():
        assert isinstance(spec.build(0, 20, 1), optuna.samplers.BaseSampler)
        assert classify(record, name, 0) == "startup"
    assert classify(record, "tpe", TPE_STARTUP) == "guided"
    assert classify(record, "random", 10**6) == "startup"


def test_a_retry_and_a_preset_are_classified_before_the_sampler() -> None:
    retry = optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=0.5, system_attrs={"failed_trial": 3}
    )
    preset = optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=0.5, system_attrs={"fixed_params": {"x": 1}}
    )
    assert classify(TrialRecord(retry), "tpe", 50) == "retry"
    assert classify(TrialRecord(preset), "tpe", 50) == "enqueued"
    plain = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5)
    valid = "auto, tpe, nsga2, local, random"
    with pytest.raises(NasError, match=f"unknown sampler 'bogus'; valid: {valid}"):
        classify(TrialRecord(plain), "bogus", 0)


def test_auto_is_local_search_for_one_objective_and_tpe_for_several(tiny_space: Path) -> None:
    """The default chooses by the number of objectives (what beat random on NAS-Bench-201),
    and its trials are classified by what actually sampled them."""
    from nas.study.local import LocalSearchSampler

    assert isinstance(make_sampler("auto", 0, 20, 1), LocalSearchSampler)
    assert isinstance(make_sampler("auto", 0, 20, 2), optuna.samplers.TPESampler)
    study = _search_with_workers(tiny_space, "auto", workers=1, trials=16)  # two objectives
    recorded = [TrialRecord(t).sampled_by for t in sorted(study.trials, key=lambda t: t.number)]
    assert recorded[:TPE_STARTUP] == ["startup"] * TPE_STARTUP
    assert set(recorded[TPE_STARTUP:]) == {"guided"}
