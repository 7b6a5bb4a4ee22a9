"""The Python API: ``nas.suggest`` inside a user's own Optuna objective, and ``nas.Search``,
which runs what ``nas search`` runs."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nas
from nas.errors import NasError
from nas.study.record import TrialRecord
from tests.conftest import DEFAULT_SPACE

LIMIT = 300_000


def _objective(space: str) -> optuna.study.study.ObjectiveFuncType:
    def objective(trial: optuna.trial.Trial) -> float:
        arch = nas.suggest(trial, space, param_limit=f"{LIMIT // 1000}k")
        return float(arch.stem_width)  # the user's own score; nas only sampled and checked

    return objective


def test_suggest_rejects_over_the_limit_as_nas_search_does() -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5, multivariate=True),
    )
    study.optimize(_objective(str(DEFAULT_SPACE)), n_trials=20)
    records = [TrialRecord(t) for t in study.trials]
    rejected = [r for r in records if r.is_rejected]
    kept = [r for r in records if r.state == TrialState.COMPLETE]
    assert rejected and kept
    for r in rejected:  # pruned with its reason and the violation the sampler reads
        assert r.state == TrialState.PRUNED and "params > limit 300.00k" in (r.rejected or "")
        assert r.trial.constraints["params"] == (r.params or 0) - LIMIT > 0
    for r in kept:  # counted before any weights exist, recorded as nas search records it
        assert r.params is not None and r.params <= LIMIT and r.flops is not None
        assert nas.ArchConfig.from_dict(r.arch or {}).summary()
        assert r.trial.constraints["params"] <= 0


def test_suggest_takes_a_space_object_and_every_limit() -> None:
    from nas.space import load_space

    space = load_space(str(DEFAULT_SPACE))
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="FLOPs > limit 1"):  # any draw fits 1G params
        nas.suggest(trial, space, param_limit="1G", flops_limit=1)
    record = TrialRecord(study.trials[0])
    assert (record.rejected or "").endswith("FLOPs > limit 1") and record.flops
    assert record.trial.constraints["flops"] > 0 and record.trial.constraints["params"] <= 0
    with pytest.raises(NasError, match=r"unknown limit.*param_limt.*valid: param_limit"):
        nas.suggest(study.ask(), space, param_limt="5M")


def test_search_from_python_runs_and_resumes_a_study(tiny_space: Path, tmp_path: Path) -> None:
    settings = {
        "space": str(tiny_space),
        "dataset": "fake",
        "param_limit": "1M",
        "proxy_epochs": 1,
        "proxy_subset": 64,
        "proxy_val": 32,
        "proxy_batch_size": 16,
        "device": "cpu",
        "storage": f"sqlite:///{tmp_path}/api.db",
        "study": "api",
    }
    study = nas.Search(trials=1, **settings).run()
    assert isinstance(study, optuna.Study)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1
    again = nas.Search(trials=2, **settings).run()  # the same study, one more trained trial
    assert again.study_name == "api"
    assert len(again.get_trials(states=(TrialState.COMPLETE,))) == 2
    with pytest.raises(NasError, match="keeps its pinned settings: --proxy-epochs recorded 1"):
        nas.Search(trials=3, **{**settings, "proxy_epochs": 2}).run()


def test_search_settings_by_name_are_checked() -> None:
    with pytest.raises(NasError, match=r"unknown setting.*trails.*valid:.*trials"):
        nas.Search(trails=3)
    with pytest.raises(NasError, match="setting param_limit: cannot read parameter limit"):
        nas.Search(param_limit="5X")
