"""NSGA-II with several workers on one study: generations count running members, and a
member that finishes late still feeds a parent selection (``RejectionAwareNSGAII``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from nas.study import _optuna
from nas.study.nsga2 import RejectionAwareNSGAII
from nas.study.record import SELECTION_KEY
from nas.study.samplers import nsga2_population
from nas.study.stats import is_rejected, is_trained

KEY = RejectionAwareNSGAII.generation_key()
SPACE: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}


def _study(population: int = 4) -> optuna.Study:
    sampler = RejectionAwareNSGAII(seed=0, population_size=population)
    return optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)


def _reject(study: optuna.Study, trial: optuna.trial.Trial, violation: float) -> None:
    """End ``trial`` as the objective ends a candidate over the limit."""
    trial.set_user_attr("params", 1000)
    trial.set_constraint("params", violation)
    trial.set_user_attr("rejected", "over the limit")
    study.tell(trial, state=TrialState.PRUNED)


def _complete(study: optuna.Study, trial: optuna.trial.Trial, accuracy: float, params: int) -> None:
    trial.set_user_attr("params", params)
    trial.set_constraint("params", -1.0)
    study.tell(trial, [accuracy, params])


def _generations(study: optuna.Study) -> list[int]:
    return [t.system_attrs[KEY] for t in study.get_trials(deepcopy=False)]


def _selection(study: optuna.Study, generation: int) -> dict[str, Any]:
    record: dict[str, Any] = _optuna.study_system_attrs(study)[f"{SELECTION_KEY}{generation}"]
    return record


def test_running_trials_fill_their_generation() -> None:
    """A generation is full with ``population_size`` assigned trials, running ones included;
    FAIL and not-trained trials give their place up, a queued retry keeps it."""
    study = _study(4)
    running = [study.ask(SPACE) for _ in range(4)]
    assert _generations(study) == [0, 0, 0, 0]
    study.ask(SPACE)  # nothing finished yet: generation 0 is full all the same
    assert _generations(study) == [0, 0, 0, 0, 1]
    _reject(study, running[0], 1.0)  # a rejection finishing keeps its place
    more = [study.ask(SPACE) for _ in range(3)]
    assert _generations(study) == [0, 0, 0, 0, 1, 1, 1, 1]

    study.tell(more[0], state=TrialState.FAIL)  # never a member: its place is free again
    assert study.ask(SPACE).number == 8 and _generations(study)[8] == 1
    more[1].set_user_attr("not_trained", "the study already has enough trained trials")
    study.tell(more[1], state=TrialState.PRUNED)
    assert study.ask(SPACE).number == 9 and _generations(study)[9] == 1

    # trial 9's worker died: its retry waits in the queue, with trial 9's generation
    dead = study.trials[9]
    study.tell(9, state=TrialState.FAIL)
    retry = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params={"x": 0.5},
        distributions=SPACE,
        system_attrs={**dead.system_attrs, "failed_trial": 9},
    )
    study.add_trial(retry)
    # another worker samples before the retry is taken: generation 1 is full with it
    study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    sampler = study.sampler
    assert isinstance(sampler, RejectionAwareNSGAII)
    assert sampler.get_trial_generation(study, study.trials[11]) == 2
    taken = study.ask(SPACE)
    assert taken.number == 10 and _generations(study) == [0] * 4 + [1] * 7 + [2]


def test_a_member_that_finishes_late_feeds_the_next_selection() -> None:
    """The parents of generation g are chosen from the parents of g - 1 and every finished
    member of an earlier generation that no selection has seen, again whenever one has
    finished since; feasible members first."""
    study = _study(4)
    gen0 = [study.ask(SPACE) for _ in range(4)]
    _reject(study, gen0[0], 2.0)
    _reject(study, gen0[1], 1.0)  # trials 2 and 3 are still training

    first = study.ask(SPACE)
    assert first.number == 4 and _generations(study)[4] == 1
    assert _selection(study, 1)["pool"] == [0, 1]
    assert _selection(study, 1)["parents"] == [0, 1]
    _complete(study, gen0[2], 0.8, 50)
    # trial 5: the pool has grown, so generation 1's parents are chosen again
    second = study.ask(SPACE)
    assert _selection(study, 1)["pool"] == [0, 1, 2]
    assert _selection(study, 1)["trial"] == 5
    third, fourth = study.ask(SPACE), study.ask(SPACE)
    assert _generations(study) == [0, 0, 0, 0, 1, 1, 1, 1]
    _reject(study, first, 0.5)
    _complete(study, second, 0.6, 10)
    _reject(study, third, 3.0)

    study.ask(SPACE)  # trial 8, generation 2; trials 3 and 7 still train
    assert _generations(study)[8] == 2
    record = _selection(study, 2)
    assert record["pool"] == [0, 1, 2, 4, 5, 6]
    # constrained domination: the feasible 2 and 5, then the least violation, 4 then 1
    assert record["parents"] == [1, 2, 4, 5]

    _complete(study, gen0[3], 0.95, 20)  # generation 0's last member, long after its peers
    _complete(study, fourth, 0.5, 5)
    study.ask(SPACE)  # trial 9
    record = _selection(study, 2)
    assert record["pool"] == [0, 1, 2, 3, 4, 5, 6, 7] and record["trial"] == 9
    assert record["parents"] == [2, 3, 5, 7]  # the late trial 3 is among them
    sampler = study.sampler
    assert isinstance(sampler, RejectionAwareNSGAII)
    parents = sampler.get_parent_population(study, 2)
    assert [p.number for p in parents] == [2, 3, 5, 7]
    assert all(p.state == TrialState.COMPLETE for p in parents)

    gen2 = [study.trials[8], study.trials[9], study.ask(SPACE), study.ask(SPACE)]
    # trials 10 and 11: nothing finished meanwhile, the recorded choice stands
    assert _selection(study, 2)["trial"] == 9
    for t, accuracy in zip(gen2, (0.7, 0.85, 0.3, 0.9), strict=True):
        study.tell(t.number, [accuracy, 30])
    study.ask(SPACE)  # trial 12, generation 3: elitism, as in NSGA-II
    assert _generations(study)[12] == 3
    # generation 2's parents and its population; the members no selection kept are gone
    assert _selection(study, 3)["pool"] == [2, 3, 5, 7, 8, 9, 10, 11]


def test_one_worker_is_deterministic() -> None:
    def run() -> list[float]:
        study = _study(4)
        for i in range(14):
            trial = study.ask(SPACE)
            x = float(trial.params["x"])
            if x > 0.6:
                _reject(study, trial, x - 0.6)
            else:
                _complete(study, trial, x, 100 * i)
        return [float(t.params["x"]) for t in study.trials]

    assert run() == run()


def _member(t: FrozenTrial) -> bool:
    """A generation member as the sampler counts a finished trial."""
    return is_trained(t) or (
        is_rejected(t) and t.state == TrialState.PRUNED and bool(t.constraints)
    )


@pytest.mark.slow
def test_three_workers_on_one_sqlite_study_feed_every_member_to_a_selection(
    tiny_space: Path, tmp_path: Path
) -> None:
    """Three ``nas search`` processes released together on one SQLite study, about half of
    the candidates over the parameter limit (rejected in milliseconds) while trained ones
    take a second: no generation holds more than the population, and every trained member
    that finished before a later generation's selection was computed was considered by it
    or by an earlier one."""
    check_three_workers(f"sqlite:///{tmp_path}/nsga2.db", tiny_space, tmp_path)
    assert Path(f"{tmp_path}/nsga2.db.lock").exists()  # the workers took the study's lock


def check_three_workers(url: str, space: Path, folder: Path) -> None:
    """Run three NSGA-II workers together on the study ``ga`` at ``url`` and audit it."""
    from tests.search.test_workers import start_together

    trials = 12
    population = nsga2_population(trials)
    args = [
        "search", "--space", str(space), "--dataset", "fake", "--param-limit", "2900",
        "--sampler", "nsga2", "--trials", str(trials), "--proxy-epochs", "1",
        "--proxy-subset", "32", "--proxy-val", "16", "--storage", url, "--study", "ga",
        "--seed", "0", "--device", "cpu", "--quiet", "--no-early-stopping",
    ]  # fmt: skip
    procs = start_together(args, 3, folder / "b", {"NAS_SLOW_EPOCH": "0.6"})
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err

    study = optuna.load_study(study_name="ga", storage=url)
    done = study.get_trials(deepcopy=False)
    assert len([t for t in done if is_trained(t)]) == trials
    assert sum(is_rejected(t) for t in done) >= 3  # the limit rejected a good share
    members = [t for t in done if _member(t)]
    sizes: dict[int, int] = {}
    for t in members:
        sizes[t.system_attrs[KEY]] = sizes.get(t.system_attrs[KEY], 0) + 1
    assert len(sizes) >= 3, sizes
    assert max(sizes.values()) <= population, sizes

    attrs = _optuna.study_system_attrs(study)
    selections = {
        int(k.removeprefix(SELECTION_KEY)): v
        for k, v in attrs.items()
        if k.startswith(SELECTION_KEY)
    }
    assert len(selections) >= 2, selections
    # a commit may land a moment after the trial's completion time was taken
    margin = timedelta(seconds=0.5)
    for generation, record in selections.items():
        computed = datetime.fromisoformat(record["computed_at"])
        earlier = [t for t in members if t.system_attrs[KEY] < generation]
        assert set(record["pool"]) <= {t.number for t in earlier}
        assert set(record["parents"]) <= set(record["pool"])
        assert len(record["parents"]) == min(population, len(record["pool"]))
        # what this selection or an earlier one considered
        seen = {n for g, r in selections.items() if g <= generation for n in r["pool"]}
        for t in earlier:
            assert t.datetime_complete is not None
            if is_trained(t) and t.datetime_complete < computed - margin:
                assert t.number in seen, (t.number, generation, selections)

    # the case that used to be lost: a member that finished after its successors had started
    begun: dict[int, datetime] = {}
    for t in done:
        g, start = t.system_attrs.get(KEY), t.datetime_start
        if g is not None and start is not None:
            begun[g] = min(begun.get(g, start), start)
    late = [
        t.number
        for t in members
        if is_trained(t)
        and t.datetime_complete is not None
        and t.datetime_complete > begun.get(t.system_attrs[KEY] + 1, datetime.max)
    ]
    fed = {n for record in selections.values() for n in record["pool"]}
    assert any(n in fed for n in late), (late, selections)
