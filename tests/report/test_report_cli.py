"""``nas report`` through the real command."""

from __future__ import annotations

from pathlib import Path

import optuna

from nas.study.cleanup import INTERRUPTED
from tests.conftest import run_nas


def test_report_writes_one_html_page(
    front_study: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    db, _ = front_study
    out = tmp_path / "r" / "report.html"
    res = run_nas("report", "--storage", f"sqlite:///{db}", "--study", "w", "--out", str(out))
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    for title in (
        "Pareto front: accuracy vs params",
        "Rejection rate over time",
        "Accuracy by attention type",
        "Proxy vs full accuracy",
    ):
        assert title in html
    assert html.count("<html") == 1 and "winner-2" in html


def test_report_refuses_a_study_without_trained_trials(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    optuna.create_study(study_name="e", storage=f"sqlite:///{db}")
    res = run_nas(
        "report", "--storage", f"sqlite:///{db}", "--study", "e", "--out", str(tmp_path / "r.html")
    )
    assert res.returncode != 0 and "has no trained trial yet" in res.stderr


def test_a_study_whose_only_trial_was_interrupted_says_so(tmp_path: Path) -> None:
    """Not "search first": the user did; its one trial was stopped, and is retried."""
    db = tmp_path / "i.db"
    study = optuna.create_study(study_name="i", storage=f"sqlite:///{db}")
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL, user_attrs={"fail_reason": INTERRUPTED["SIGINT"]}
        )
    )
    res = run_nas(
        "report", "--storage", f"sqlite:///{db}", "--study", "i", "--out", str(tmp_path / "r.html")
    )
    assert res.returncode == 2 and res.stderr.strip() == (
        "nas: error: study 'i' has no trained trial yet: 1 trial was stopped before training "
        "ended (the last, trial 0: interrupted by the user (Ctrl-C)); nas search on this study "
        "retries them first"
    )
