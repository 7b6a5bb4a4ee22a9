"""One "best": the search's summary, the report's header, ``nas export --best`` and the
dashboard's study note name the same trial, on a study with ties, a repeated candidate and
several objectives, before and after full training."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import create_trial

from nas.cli.main import main
from nas.dashboard import study_note
from nas.presets import preset
from nas.report.html import render_report
from nas.study.stats import study_stats

#: (preset, accuracy, params, latency): trial numbers in order.
ROWS = [
    ("resnet20", 0.70, 270_000, 5.0),  # 0: ties with 1 in accuracy, costlier in params
    ("resnet20-cbam", 0.70, 200_000, 9.0),  # 1: the tie goes here (fewer params first)
    ("resnet20-mhsa", 0.74, 300_000, 6.0),  # 2: best single run, but see 3
    ("resnet20-mhsa", 0.60, 300_000, 6.0),  # 3: the same candidate again: mean 0.67
    ("resnet20", 0.65, 100_000, 2.0),  # 4
]


def _study(tmp_path: Path) -> tuple[optuna.Study, str]:
    url = f"sqlite:///{tmp_path}/best.db"
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"], storage=url, study_name="best"
    )
    study.set_metric_names(["val_accuracy", "params", "latency_ms"])
    study.set_user_attr("nas_settings", {"objectives": ["accuracy", "params", "latency"]})
    for name, accuracy, params, latency in ROWS:
        arch = preset(name).to_dict()
        attrs = {"arch": arch, "accuracy": accuracy, "params": params, "latency": latency}
        study.add_trial(
            create_trial(values=[accuracy, params, latency], user_attrs=attrs, params={})
        )
    return study, url


def _named(study: optuna.Study, url: str, tmp_path: Path) -> set[int]:
    """The trial each place calls best."""
    stats = study_stats(study)
    assert stats.best is not None
    header = render_report(study).split("Best trial</dt><dd>")[1]
    from_report = int(header.split("trial ", 1)[1].split(":")[0])
    note = study_note(study).split("## The best trial\n\nTrial ")[1]
    from_note = int(note.split(" ")[0])
    out = tmp_path / "best.json"
    assert main(["export", "--storage", url, "--study", "best", "--best", "--out", str(out)]) == 0
    from_export = json.loads(out.read_text())["meta"]["trial"]
    return {stats.best.number, from_report, from_note, from_export}


def test_every_place_names_the_same_best_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study, url = _study(tmp_path)
    assert study.user_attrs["nas_settings"]["objectives"] == ["accuracy", "params", "latency"]
    # 2's single run (0.74) is not the best: its candidate's mean is 0.67; 0 and 1 tie at
    # 0.70 and 1 has fewer params
    assert _named(study, url, tmp_path) == {1}
    stats = study_stats(study)
    assert stats.best_accuracy == pytest.approx(0.70) and stats.best_runs == 1
    # after full training, the highest validation accuracy after it chooses
    trials = study.get_trials(deepcopy=False)
    from nas.study import _optuna

    storage = _optuna.rdb_of(study)
    assert storage is not None
    _optuna.set_result_attrs(storage, _optuna.trial_id(trials[4]), {"full_val_accuracy": 0.9})
    _optuna.set_result_attrs(storage, _optuna.trial_id(trials[1]), {"full_val_accuracy": 0.8})
    study = optuna.load_study(study_name="best", storage=url)
    assert _named(study, url, tmp_path) == {4}
    capsys.readouterr()


def test_a_lucky_second_run_does_not_make_its_candidate_best(tmp_path: Path) -> None:
    """A candidate's later run (0.90) with a poor first run (0.50) is judged by the mean
    (0.70), and is named by its first trial: 0.75 elsewhere wins."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "params"])
    rows = [
        ("resnet20-mhsa", 0.50, 300_000),
        ("resnet20", 0.75, 270_000),
        ("resnet20-mhsa", 0.90, 300_000),
    ]
    for name, accuracy, params in rows:
        attrs = {"arch": preset(name).to_dict(), "accuracy": accuracy, "params": params}
        study.add_trial(create_trial(values=[accuracy, params], user_attrs=attrs, params={}))
    stats = study_stats(study)
    assert stats.best is not None and stats.best.number == 1


def test_a_study_whose_every_candidate_was_rejected_says_so() -> None:
    """Not "run nas search first" (it ran): every candidate was over the limit."""
    import nas
    from tests.conftest import ROOT

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        nas.suggest(trial, str(ROOT / "search_spaces" / "small_cifar.toml"), param_limit=4000)
        return 0.0

    study.optimize(objective, n_trials=3)
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.PRUNED}
    with pytest.raises(
        nas.NasError,
        match=r"no trained trial: 3 candidates it drew were "
        r"rejected by its limits \(the last: .* params > limit 4\.00k\)",
    ):
        nas.best(study)


def test_a_study_whose_trials_failed_or_that_is_a_fidelity_study_says_so() -> None:
    """Not "raise the limit" when most trials failed (a NaN loss), not "search first" when
    the search ran, nor for a study that nas fidelity made."""
    import nas
    from nas.study.cleanup import INTERRUPTED
    from nas.study.record import FIDELITY_SETTINGS, REJECTED, StudyRecord, TrialWriter

    study = optuna.create_study(study_name="nan", directions=["maximize", "minimize"])
    rejected = study.ask()
    rejected.set_user_attr(REJECTED, "6.10M params > limit 5.00M")
    study.tell(rejected, state=optuna.trial.TrialState.PRUNED)
    for _ in range(2):
        trial = study.ask()
        TrialWriter(trial).failed("the training loss is NaN at epoch 1")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    for _ in range(2):  # Ctrl-C'd: retried, not failures of their candidates
        trial = study.ask()
        TrialWriter(trial).failed(INTERRUPTED["SIGINT"])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    with pytest.raises(nas.NasError) as refused:
        nas.best(study)
    assert str(refused.value) == (
        "study 'nan' has no trained trial: 2 trials failed (the last: the training loss is "
        "NaN at epoch 1) and 1 rejected by its limits"
    )
    fidelity = optuna.create_study(study_name="fid")
    StudyRecord(fidelity).set(FIDELITY_SETTINGS, {"panel": 3})
    with pytest.raises(nas.NasError, match=r"^study 'fid' is a fidelity study \(nas fidelity"):
        nas.best(fidelity)


def test_best_of_something_that_is_not_a_study_says_what_it_takes() -> None:
    import nas

    with pytest.raises(TypeError, match=r"takes the optuna.Study a search returned, not str"):
        nas.best("my-study")  # type: ignore[arg-type]


def test_a_study_whose_trials_are_still_running_says_so_not_raise_the_limit() -> None:
    """Workers that exited on a database outage leave their trials RUNNING until another
    worker fails them: the study has rejections too, but "raise the limit" is wrong advice."""
    import nas
    from nas.study.record import REJECTED

    study = optuna.create_study(study_name="d2", directions=["maximize", "minimize"])
    for _ in range(3):
        rejected = study.ask()
        rejected.set_user_attr(REJECTED, "6.10M params > limit 5.00M")
        study.tell(rejected, state=optuna.trial.TrialState.PRUNED)
    study.ask(), study.ask()  # trials 3 and 4, RUNNING
    with pytest.raises(nas.NasError) as refused:
        nas.best(study)
    assert str(refused.value) == (
        "study 'd2' has no trained trial yet: 2 trials (3, 4) are still running; if no worker "
        "trains them any more, nas search on this study fails and retries them once their "
        "heartbeats are older than its grace period"
    )
