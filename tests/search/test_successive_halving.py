"""Successive halving in real searches: in process, resumed, and with two workers sharing a
study on a real PostgreSQL server. Every stopped trial must be beaten at its rung by a trial
of no higher cost, which the test checks from the curves stored in the study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from nas.study.stats import is_stopped
from tests.conftest import make_image_folder, run_nas, tiny_search
from tests.pgserver import PostgresServer

pytestmark = [pytest.mark.slow]

EPOCHS = 4


@pytest.fixture(scope="module")
def six_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Harder than the 3-class folder, so that accuracies do not all reach 1.0 at once."""
    return make_image_folder(tmp_path_factory.mktemp("six"), classes=6, per_class=30)


def check_stops(study: optuna.Study, cost: str = "params") -> list[FrozenTrial]:
    """Every stopped trial was beaten at its rung by a trial of no higher ``cost``; every
    trial trained to the end was never stopped. Returns the stopped trials."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("curve")]
    stopped = [t for t in trials if is_stopped(t)]
    for t in stopped:
        epoch = t.user_attrs["stopped_at_epoch"]
        curve = t.user_attrs["curve"]
        assert len(curve) == epoch < EPOCHS  # trained no further than its rung
        assert t.user_attrs["rungs"][-1] == epoch
        beaters = [
            o.number
            for o in trials
            if o.number != t.number
            and o.user_attrs[cost] <= t.user_attrs[cost]
            and len(o.user_attrs["curve"]) >= epoch
            and o.user_attrs["curve"][epoch - 1] > curve[epoch - 1]
        ]
        assert beaters, f"trial {t.number} was stopped by no cheaper, better trial"
        assert f"trial {beaters[0]}" in t.user_attrs["stopped_early"] or any(
            f"trial {b} " in t.user_attrs["stopped_early"] for b in beaters
        )
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert len(t.user_attrs["curve"]) == EPOCHS and "stopped_at_epoch" not in t.user_attrs
    return stopped


def test_search_stops_only_trials_beaten_by_no_costlier_ones(
    tiny_space: Path, six_classes: Path, tmp_path: Path
) -> None:
    db = tmp_path / "sha.db"
    kw = {"trials": 10, "proxy_epochs": EPOCHS, "early_stopping": "sha", "eta": 2.0}
    study = tiny_search(tiny_space, six_classes, db, "sha", **kw)
    first = check_stops(study)
    assert first, "10 trials of 4 epochs at eta 2 should stop at least one"
    assert all(t.user_attrs["stopped_at_epoch"] in (1, 2) for t in first)  # the rungs at eta 2
    # resumed: the new trials are judged against the old curves too
    study = tiny_search(tiny_space, six_classes, db, "sha", **{**kw, "trials": 14})
    assert len(check_stops(study)) >= len(first)
    assert sum(1 for t in study.trials if t.user_attrs.get("curve")) == 14


def test_flops_objective_compares_flops(
    tiny_space: Path, six_classes: Path, tmp_path: Path
) -> None:
    study = tiny_search(
        tiny_space,
        six_classes,
        tmp_path / "f.db",
        "f",
        trials=10,
        proxy_epochs=EPOCHS,
        early_stopping="sha",
        eta=2.0,
        objectives=("accuracy", "flops"),
    )
    for t in check_stops(study, cost="flops"):
        assert "FLOPs" in t.user_attrs["stopped_early"]


@pytest.mark.postgres
def test_two_workers_on_postgres_stop_correctly(
    tiny_space: Path, six_classes: Path, postgres: PostgresServer
) -> None:
    url = postgres.create_database("sha_workers")
    args = [
        "search", "--space", str(tiny_space), "--dataset", "imagefolder",
        "--data-dir", str(six_classes), "--trials", "12", "--proxy-epochs", str(EPOCHS),
        "--storage", url, "--study", "sha", "--seed", "0", "--device", "cpu", "--quiet",
        "--sampler", "random", "--early-stopping", "sha", "--eta", "2", "--workers", "2",
    ]  # fmt: skip
    out = run_nas(*args)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="sha", storage=url)
    stopped = check_stops(study)
    assert stopped
    assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) == 2
    assert "stopped at epoch" in out.stderr  # the log says where each one stopped
