"""The sampler learns the parameter limit from rejected trials (default space).

Training is replaced by a quick synthetic score (``benchmarks/rejection_learning.py``) so that
a 45-trial study runs in seconds; everything else (space, counting, rejection, constraints,
the loop) is the real search. Each claim is an ablation: the same search with the rejections
hidden from the sampler (or, for NSGA-II, without constraint values) must do worse, so that
what the sampler is told about rejections, not luck, is what teaches it.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from benchmarks.rejection_learning import measure
from nas.study.nsga2 import RejectionAwareNSGAII
from nas.study.samplers import make_sampler, nsga2_population
from nas.study.stats import is_rejected
from tests.conftest import DEFAULT_SPACE


def _last_third(tmp_path: Path, sampler: str, seed: int, ablation: str) -> float:
    url = f"sqlite:///{tmp_path}/{sampler}-{seed}-{ablation}.db"
    result = measure(str(DEFAULT_SPACE), 45, 300_000, sampler, seed, url, ablation=ablation)
    assert result["trained"] == 45
    last = result["rejection_last_third"]
    assert last is not None
    return float(last)


@pytest.mark.slow
def test_tpe_rejects_less_when_it_sees_the_rejections(tmp_path: Path) -> None:
    told = _last_third(tmp_path, "tpe", 0, "none")
    hidden = _last_third(tmp_path, "tpe", 0, "hidden")
    assert told < hidden, (told, hidden)
    assert told <= 0.2
    study = optuna.load_study(study_name="learn", storage=f"sqlite:///{tmp_path}/tpe-0-none.db")
    rejected = [t for t in study.trials if is_rejected(t)]
    assert rejected and all(t.state == optuna.trial.TrialState.PRUNED for t in rejected)
    assert all(t.constraints["params"] > 0 for t in rejected)
    assert all("curve" not in t.user_attrs for t in rejected)


def test_nsga2_counts_rejections_in_its_generations(tmp_path: Path) -> None:
    """Rejected (PRUNED) trials are members of their generation, infeasible; the parents of
    the next generation are the feasible ones first."""
    url = f"sqlite:///{tmp_path}/g.db"
    sampler = make_sampler("nsga2", 0, trials=16)
    assert isinstance(sampler, RejectionAwareNSGAII) and sampler.population_size == 4
    study = optuna.create_study(
        storage=url, sampler=sampler, directions=["maximize", "minimize"], study_name="g"
    )

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        trial.set_constraint("params", x - 0.5)
        if x > 0.5:
            trial.set_user_attr("rejected", "over the limit")
            raise optuna.TrialPruned
        return x, x

    study.optimize(objective, n_trials=12)
    key = sampler.generation_key()
    generations = [t.system_attrs[key] for t in study.trials]
    assert generations == sorted(generations)
    assert generations.count(0) == 4  # rejected ones fill generation 0 too
    first = sampler.get_population(study, 0)
    assert len(first) == 4 and all(t.state.name == "COMPLETE" for t in first)
    parents = sampler.get_parent_population(study, 1)
    feasible = [p for p in parents if p.constraints["params"] <= 0]
    infeasible = [p for p in parents if p.constraints["params"] > 0]
    assert len(parents) == 4
    # constrained domination: every feasible member is chosen before any infeasible one
    assert len(feasible) == min(4, sum(p.constraints["params"] <= 0 for p in _pool(study)))
    assert len(feasible) + len(infeasible) == 4


def _pool(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    key = RejectionAwareNSGAII.generation_key()
    return [t for t in study.trials if t.system_attrs.get(key) == 0]


def test_nsga2_population_follows_the_trial_budget() -> None:
    assert nsga2_population(20) == 5
    assert nsga2_population(4) == 4
    assert nsga2_population(1000) == 50


@pytest.mark.parametrize("param_limit", [None, "1k"])
def test_a_memory_limit_below_every_candidate_ends_the_search_with_its_reason(
    tiny_space: Path, tmp_path: Path, param_limit: str | None
) -> None:
    """A count limit below the cheapest candidate is refused before the study starts; a
    memory or latency limit needs a measurement of every combination, so the loop checks it
    once a run of rejections suggests it, and stops with the reason instead of drawing up
    to a thousand candidates; a command exits 1, as after trials failing in a row. With a
    parameter limit that rejects most candidates (the space's smallest has 774 parameters,
    its median 2.86k), the run of rejections mixes both limits, and the memory limit is
    still found out."""
    import nas
    from nas.search.loop import CHECK_HARDWARE_AFTER

    limits = {"param_limit": param_limit} if param_limit else {}
    outcome = nas.Search(
        space=str(tiny_space),
        dataset="fake",
        device="cpu",
        memory_limit="1KB",
        trials=1,
        storage=f"sqlite:///{tmp_path}/mem.db",
        **limits,
    ).outcome()
    assert outcome.stats.trained == 0 and outcome.stats.rejected == CHECK_HARDWARE_AFTER
    assert f"{CHECK_HARDWARE_AFTER} candidates in a row were rejected: the peak memory " in (
        outcome.stop_reason
    )
    assert "limit 0.001 MB is below the cheapest candidate of space 'tiny'" in (outcome.stop_reason)
    assert outcome.stop_reason.endswith(
        "raise memory_limit or use a smaller space (in another study: this one keeps its limits)"
    )
    assert outcome.exit_code == 1  # the search gave up: nas search exits 1
