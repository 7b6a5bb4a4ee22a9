"""Progress inside an epoch: the trainer reports every step; logs show a line at most every
NAS_LOG_EVERY seconds; the search and train-winners print it."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import optuna
import pytest

from nas.search.events import LogMonitor
from nas.training import StepProgress, proxy_recipe
from tests.conftest import run_nas
from tests.training.test_trainer import make_trainer

LINE = re.compile(
    r"epoch (\d+)/(\d+): (\d+)% \(([\d,]+)/([\d,]+) images\), \d+ img/s, epoch ETA \S+"
)


def test_trainer_reports_every_step_of_every_epoch(image_folder: Path) -> None:
    recipe = proxy_recipe(2).replace(batch_size=8)
    trainer = make_trainer(image_folder, recipe)
    seen: list[StepProgress] = []
    trainer.fit(on_progress=seen.append)
    steps = trainer.steps_per_epoch
    assert steps >= 2
    assert [(p.epoch, p.step) for p in seen] == [
        (e, s) for e in (1, 2) for s in range(1, steps + 1)
    ]
    assert all(p.images == p.step * 8 and p.epochs == 2 and p.steps == steps for p in seen)
    last = seen[-1]
    assert last.fraction == 1.0 and last.eta == 0.0 and last.images_per_s > 0
    assert all(a.seconds <= b.seconds for a, b in itertools.pairwise(seen[:steps]))


def test_log_lines_are_throttled(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NAS_LOG_EVERY", "30")
    monitor = LogMonitor()
    for step in range(1, 1001):
        monitor.step_progress(3, StepProgress(1, 3, step, 1000, 64 * step, step * 0.01))
    assert LINE.search(capsys.readouterr().err) is None  # not before 30 s
    monkeypatch.setenv("NAS_LOG_EVERY", "0")
    monitor = LogMonitor()
    monitor.step_progress(3, StepProgress(1, 3, 250, 1000, 16000, 50.0))
    err = capsys.readouterr().err
    assert "trial 3 epoch 1/3: 25% (16,000/64,000 images), 320 img/s, epoch ETA 2m30s" in err


@pytest.mark.slow
def test_search_log_shows_progress_inside_an_epoch(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    out = run_nas(
        "search", "--space", str(tiny_space), "--dataset", "imagefolder",
        "--data-dir", str(image_folder), "--proxy-epochs", "1", "--proxy-batch-size", "8",
        "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "t", "--trials", "1",
        "--device", "cpu", "--quiet",
        env={"NAS_LOG_EVERY": "0"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [m for m in map(LINE.search, out.stderr.splitlines()) if m]
    assert len(lines) >= 2, out.stderr
    percents = [int(m.group(3)) for m in lines]
    assert percents == sorted(percents) and percents[-1] == 100


@pytest.mark.slow
def test_train_winners_shows_progress_inside_an_epoch(
    front_study: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    from tests.test_winners import winners_args

    db, _ = front_study
    out = run_nas(
        *winners_args(db, tmp_path, "--top-k", "1", "--epochs", "1"),
        env={"NAS_LOG_EVERY": "0"},
    )
    assert out.returncode == 0, out.stderr
    lines = [m for m in map(LINE.search, out.stdout.splitlines()) if m]
    assert len(lines) >= 2, out.stdout
    assert int(lines[-1].group(3)) == 100
