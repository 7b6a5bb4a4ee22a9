"""``--show-settings`` shows what the study recorded, where its trials trained, and fails in
one line on a database that does not answer."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_nas, tiny_search


def test_show_settings_says_where_the_study_trained(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    import optuna

    tiny_search(tiny_space, image_folder, db, "s", trials=1, proxy_epochs=1)
    failed = optuna.trial.create_trial(  # it ran on the CPU, and failed: not a trained trial
        state=optuna.trial.TrialState.FAIL,
        user_attrs={"device": "cpu", "fail_reason": "loss is NaN at epoch 1"},
    )
    optuna.load_study(study_name="s", storage=f"sqlite:///{db}").add_trial(failed)
    out = run_nas("search", "--storage", f"sqlite:///{db}", "--study", "s", "--show-settings")
    assert out.returncode == 0, out.stderr
    assert "resumes study 's'" in out.stdout
    # counted as the summary counts trained trials
    assert "the study's trained trials trained on cpu (1 trial)" in out.stdout
    assert "worker_index" not in out.stdout and "worker-index" not in out.stdout


def test_show_settings_on_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://user:secret@127.0.0.1:1/nas"
    out = run_nas("search", "--storage", url, "--study", "x", "--show-settings", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: cannot reach the study database")
    assert "secret" not in out.stderr and "would create" not in out.stdout


def test_show_settings_refuses_a_space_file_the_run_would_refuse(tmp_path: Path) -> None:
    """--show-settings answers "would this run start?": a missing space file is the run's
    own one-line error, not a table of settings and exit 0."""
    out = run_nas(
        "search", "--space", "nope.toml", "--dataset", "fake", "--show-settings", cwd=tmp_path
    )
    assert out.returncode == 2, out.stdout
    assert out.stderr.strip() == "nas: error: space file nope.toml does not exist"
    assert "would create" not in out.stdout
