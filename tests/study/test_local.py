"""The local-search sampler: its neighbourhood, what it never proposes again, how it picks and
confirms its incumbent, and its bookkeeping."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from nas.study.local import LocalSearchSampler, local_init, neighbours, point_of
from nas.study.record import TrialRecord
from nas.study.samplers import classify

OPS = CategoricalDistribution(["a", "b", "c"])
SPACE = {"e0": OPS, "e1": OPS, "depth": IntDistribution(1, 4), "drop": FloatDistribution(0, 0.5)}


def test_neighbours_change_one_parameter_by_one_step_or_swap_like_ones() -> None:
    point = {"e0": "a", "e1": "b", "depth": 4, "drop": 0.0}
    found = {point_of(n) for n in neighbours(point, SPACE)}
    expected = [
        {**point, "e0": "b"},
        {**point, "e0": "c"},
        {**point, "e1": "a"},
        {**point, "e1": "c"},
        {**point, "depth": 3},  # 5 is out of range
        {**point, "drop": 0.05},  # a tenth of the range; -0.05 is out of range
        {**point, "e0": "b", "e1": "a"},  # the two edges share a distribution: swapped
    ]
    assert found == {point_of(e) for e in expected}
    same = {"e0": "a", "e1": "a"}
    assert same not in neighbours(same, {"e0": OPS, "e1": OPS})  # no swap of equal values


def _objective(trial: optuna.Trial) -> float:
    """A landscape whose best point is (c, c, 3): the sum of the choices' ranks."""
    rank = {"a": 0, "b": 1, "c": 2}
    x = rank[trial.suggest_categorical("e0", ["a", "b", "c"])]
    y = rank[trial.suggest_categorical("e1", ["a", "b", "c"])]
    depth = trial.suggest_int("depth", 1, 4)
    return float(x + y - abs(depth - 3))


def test_it_climbs_and_never_proposes_a_tried_point_again() -> None:
    sampler = LocalSearchSampler(seed=0, n_init=4, confirm=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=25)
    points = [point_of(t.params) for t in study.trials]
    assert len(set(points)) == len(points)  # nothing evaluated twice (confirm=1)
    assert study.best_value == 4.0  # the top: (c, c, 3)
    phases = [LocalSearchSampler.phase_of(TrialRecord(t)) for t in study.trials]
    assert phases[:4] == ["startup"] * 4 and set(phases[4:]) == {"guided"}
    assert [classify(TrialRecord(t), "local", 0) for t in study.trials] == phases


def test_an_incumbent_is_evaluated_twice_before_it_is_expanded() -> None:
    sampler = LocalSearchSampler(seed=1, n_init=3, confirm=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=12)
    seen: dict[tuple, int] = {}
    for t in study.trials:
        seen[point_of(t.params)] = seen.get(point_of(t.params), 0) + 1
    best_first = max(study.trials[:3], key=lambda t: t.value or 0)
    assert seen[point_of(best_first.params)] == 2  # the start-up's best, evaluated again
    assert study.trials[3].params == best_first.params  # first thing after the start-up


def test_rejected_points_are_never_proposed_again_and_count_as_tried() -> None:
    sampler = LocalSearchSampler(seed=2, n_init=2, confirm=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        value = _objective(trial)
        over = trial.params["depth"] == 4  # "over the limit"
        trial.set_constraint("params", 1.0 if over else -1.0)
        if over:
            raise optuna.TrialPruned("over the limit")
        return value

    study.optimize(objective, n_trials=40)
    rejected = [point_of(t.params) for t in study.trials if t.state == TrialState.PRUNED]
    assert rejected and len(set(rejected)) == len(rejected)


@pytest.mark.parametrize("objectives", [1, 2])
def test_local_init_and_both_kinds_of_study(objectives: int) -> None:
    assert [local_init(n) for n in (5, 20, 25, 100, 200)] == [4, 4, 5, 20, 40]
    tpe = optuna.samplers.TPESampler(seed=0, n_startup_trials=3)
    sampler = LocalSearchSampler(seed=3, n_init=5, model=tpe)
    study = optuna.create_study(directions=["maximize", "minimize"][:objectives], sampler=sampler)

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        value = _objective(trial)
        return value if objectives == 1 else (value, float(trial.params["depth"]))

    study.optimize(objective, n_trials=30)
    assert len(study.trials) == 30 and all(t.state == TrialState.COMPLETE for t in study.trials)


def test_swaps_only_between_like_names_and_steps_stay_on_the_grid() -> None:
    two = CategoricalDistribution([1, 2])
    space = {"stage2_stride": two, "stage2_growth": two, "stage3_growth": two}
    point = {"stage2_stride": 1, "stage2_growth": 2, "stage3_growth": 1}
    swaps = [n for n in neighbours(point, space) if sorted(n.values()) == sorted(point.values())]
    swapped = [{k for k in point if n[k] != point[k]} for n in swaps if n != point]
    # stride and growth share a distribution but are not alike; the two growths are
    assert {"stage2_growth", "stage3_growth"} in swapped
    assert {"stage2_stride", "stage2_growth"} not in swapped
    grid = FloatDistribution(0.0, 0.5, step=0.1)
    assert {n["drop"] for n in neighbours({"drop": 0.3}, {"drop": grid})} == {0.2, 0.4}
    log = FloatDistribution(1e-4, 1e-1, log=True)
    steps = [n["lr"] for n in neighbours({"lr": 1e-2}, {"lr": log})]
    assert len(steps) == 2 and min(steps) < 1e-2 < max(steps)
    assert max(steps) / 1e-2 == pytest.approx(1e-2 / min(steps))  # even on the log scale


def _conditional(trial: optuna.Trial) -> float:
    """Three or four stages; the fourth stage's depth exists only with four."""
    stages = trial.suggest_int("stages", 3, 4)
    score = float(trial.suggest_int("stage1_blocks", 1, 3))
    if stages == 4:
        score += trial.suggest_int("stage4_blocks", 1, 2) - 0.5
    return score


def test_a_plan_the_space_drops_parameters_from_still_counts_as_tried() -> None:
    """Going from four stages to three leaves ``stage4_blocks`` in the plan; the trial never
    records it, but the plan is recorded, so the same network is not planned again and
    again (it was before: a 'ghost' neighbour stayed untried forever)."""
    sampler = LocalSearchSampler(seed=0, n_init=3, confirm=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_conditional, n_trials=12)
    planned = [TrialRecord(t).system("nas:local:plan") for t in study.trials]
    plans = [tuple(map(tuple, p)) for p in planned if p]
    assert plans and len(set(plans)) == len(plans)  # no plan twice
    three = [t for t in study.trials if t.params["stages"] == 3]
    networks = [t.params["stage1_blocks"] for t in three]
    assert len(set(networks)) == len(networks)  # each three-stage network once (3 exist)


def test_a_stopped_second_attempt_counts_and_the_climb_moves_on() -> None:
    """The incumbent's second attempt is stopped early (PRUNED, as successive halving does):
    it counts as the confirming attempt, so the sampler does not retry it until the budget
    runs out."""
    sampler = LocalSearchSampler(seed=4, n_init=3, confirm=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    attempts: dict[tuple, int] = {}

    def objective(trial: optuna.Trial) -> float:
        value = _objective(trial)
        p = point_of(trial.params)
        attempts[p] = attempts.get(p, 0) + 1
        if trial.number >= 3 and attempts[p] == 2:
            raise optuna.TrialPruned("stopped early")
        return value

    study.optimize(objective, n_trials=15)
    assert max(attempts.values()) <= 2


def test_workers_see_each_others_running_plans() -> None:
    """Two workers sample at once: the second must not plan what the first is running."""
    sampler = LocalSearchSampler(seed=5, n_init=2, confirm=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=3)
    first = study.ask()
    _objective(first)  # planned and suggested, still RUNNING
    second = study.ask()
    _objective(second)
    assert first.params != second.params
    study.tell(first, 1.0)
    study.tell(second, 1.0)


def test_refused_trials_stand_for_nothing_and_presets_keep_their_parameters() -> None:
    from nas.study.local import _tried

    sampler = LocalSearchSampler(seed=6, n_init=2, confirm=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=2)
    refused = study.ask()
    _objective(refused)
    study.tell(refused, state=TrialState.PRUNED)
    trial = study.trials[-1]
    record_attrs = {**trial.user_attrs, "not_trained": "the study had enough trials"}
    refused_point = point_of(trial.params)
    copy = optuna.trial.create_trial(
        state=TrialState.PRUNED,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=record_attrs,
    )
    assert not _tried([*study.trials[:-1], copy]).covers(dict(refused_point))
    preset = {"e0": "c", "e1": "c", "depth": 3}
    study.enqueue_trial(preset)
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert _tried(waiting).covers(preset)
    study.optimize(_objective, n_trials=1)
    assert study.trials[-1].params == preset  # the preset ran with its own parameters
