"""``nas train-winners`` for real on the tiny image folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from scipy.stats import kendalltau

from tests.conftest import ROOT, run_nas


def winners_args(db: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "train-winners",
        "--storage",
        f"sqlite:///{db}",
        "--study",
        "w",
        "--device",
        "cpu",
        "--out-dir",
        str(tmp_path / "winners"),
        "--batch-size",
        "16",
        *extra,
    ]


def reload(db: Path) -> optuna.Study:
    return optuna.load_study(study_name="w", storage=f"sqlite:///{db}")


@pytest.mark.slow
def test_top_k_trains_the_best_pareto_trials_and_records_results(
    front_study: tuple[Path, optuna.Study], tmp_path: Path, image_folder: Path
) -> None:
    db, _ = front_study
    out = run_nas(*winners_args(db, tmp_path, "--top-k", "2", "--epochs", "1"))
    assert out.returncode == 0, out.stderr
    study = reload(db)
    full = {t.number: t.user_attrs for t in study.trials if "full_accuracy" in t.user_attrs}
    assert sorted(full) == [1, 2]  # se and cbam: the two best proxies of the front
    for attrs in full.values():
        assert 0.0 <= attrs["full_accuracy"] <= 1.0 and attrs["full_epochs"] == 1
        assert Path(attrs["checkpoint"]).exists() and Path(attrs["weights"]).exists()
        assert len(attrs["full_curve"]) == 1
    fidelity = study.user_attrs["proxy_fidelity"]
    assert fidelity["n"] == 2 and sorted(fidelity["trials"]) == [1, 2]
    proxy = [study.trials[n].user_attrs["accuracy"] for n in sorted(full)]
    final = [full[n]["full_accuracy"] for n in sorted(full)]
    expected = kendalltau(proxy, final).statistic
    if fidelity["tau"] is None:
        assert expected != expected  # nan: the full accuracies tie
    else:
        assert fidelity["tau"] == pytest.approx(expected)
    assert "Kendall's tau" in out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith("proxy fidelity"))
    caveat = "" if fidelity["tau"] is None else " (fewer than 5 winners: it means little)"
    assert line.endswith(f", n=2{caveat}")  # as the report says it
    _exported_weights_score_what_training_reported(db, image_folder, tmp_path, full[2])


def _exported_weights_score_what_training_reported(
    db: Path, images: Path, tmp_path: Path, full: dict[str, object]
) -> None:
    """The export's snippet, pasted, gives the test accuracy train-winners reported: its
    normalisation is the one the weights were trained with (without it, near chance)."""
    import json

    import torch

    from nas.data import load_dataset
    from nas.data.augment import normalize

    out = tmp_path / "exp" / "best.json"
    args = ("export", "--storage", f"sqlite:///{db}", "--study", "w", "--trial", "2")
    res = run_nas(*args, "--weights", "--out", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert doc["meta"]["input"]["mean"] == full["full_normalize"]["mean"]  # type: ignore[index]
    scope: dict[str, object] = {}
    exec(doc["load"].replace('"best', f'"{out.parent}/best'), scope)  # as run in its folder
    exec(res.stdout.split("load it with:\n", 1)[1], printed := {})  # as printed
    data = load_dataset("imagefolder", str(images))
    x = data.test_x.float() / 255  # float images in [0, 1], as the snippet says
    trained = normalize(data.test_x, *data.mean_std())  # as the trainer scored them
    for ns in (scope, printed):
        model, mean, std = ns["model"], ns["mean"], ns["std"]
        with torch.no_grad():
            logits = model((x - mean) / std)  # type: ignore[operator]
            expected = model(trained)  # type: ignore[operator]
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
        accuracy = (logits.argmax(1) == data.test_y).float().mean().item()
        assert accuracy == pytest.approx(full["full_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_pareto_skips_dominated_trials(
    front_study: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    db, _ = front_study
    out = run_nas(
        *winners_args(
            db, tmp_path, "--pareto", "--epochs", "1", "--no-mixup", "--no-cutmix", "--no-ema"
        )
    )
    assert out.returncode == 0, out.stderr
    trained = [t.number for t in reload(db).trials if "full_accuracy" in t.user_attrs]
    assert trained == [0, 1, 2]  # mhsa (trial 3) is dominated by cbam
    assert reload(db).trials[0].user_attrs["full_recipe"]["ema_decay"] is None


@pytest.mark.slow
def test_killed_in_the_second_epoch_resumes_from_the_checkpoint(
    front_study: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    db, _ = front_study
    args = winners_args(db, tmp_path, "--top-k", "1", "--epochs", "2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NAS_SLOW_EPOCH": "4"},
    )
    checkpoint = tmp_path / "winners" / "trial-2.pt"
    try:
        deadline = time.time() + 120
        while not checkpoint.exists():
            assert time.time() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.2)
        time.sleep(1.0)  # now asleep at the start of epoch 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert "full_accuracy" not in reload(db).trials[2].user_attrs
    again = run_nas(*args)
    assert again.returncode == 0, again.stderr
    assert "resumed from the checkpoint after epoch 1" in again.stdout
    assert "epoch 1/2" not in again.stdout and "epoch 2/2" in again.stdout
    attrs = reload(db).trials[2].user_attrs
    assert attrs["full_epochs"] == 2 and len(attrs["full_curve"]) == 2
    # the table's training time is the winner's over both runs (its slow first epoch too),
    # as recorded, not this run's wall time
    assert attrs["full_seconds"] >= 4
    row = next(x for x in again.stdout.splitlines() if x.lstrip("│ ").startswith("2 "))
    assert f" {attrs['full_seconds']:.0f}s " in row, row


def test_bad_input_is_one_line(front_study: tuple[Path, optuna.Study], tmp_path: Path) -> None:
    db, _ = front_study
    cases = [
        (
            [
                "train-winners",
                "--storage",
                f"sqlite:///{db}",
                "--study",
                "nope",
                "--top-k",
                "1",
                "--epochs",
                "1",
            ],
            "no study named 'nope'",
        ),
        (
            [
                "train-winners",
                "--storage",
                f"sqlite:///{db}",
                "--study",
                "w",
                "--top-k",
                "0",
                "--epochs",
                "1",
            ],
            "--top-k must be at least 1",
        ),
    ]
    empty = optuna.create_study(
        study_name="empty", storage=f"sqlite:///{db}", directions=["maximize", "minimize"]
    )
    assert empty.study_name == "empty"
    cases.append(
        (
            [
                "train-winners",
                "--storage",
                f"sqlite:///{db}",
                "--study",
                "empty",
                "--top-k",
                "1",
                "--epochs",
                "1",
            ],
            "has no trained trial yet",
        )
    )
    taken = tmp_path / "a-file"
    taken.write_text("")
    no_data = ["--top-k", "1", "--epochs", "1", "--data-dir", str(tmp_path / "no-such-data")]
    # a folder that cannot be made is refused before the data are read; data that are
    # missing are refused after the folder was checked, and the folder is not made
    cases.append((winners_args(db, tmp_path, *no_data, "--out-dir", str(taken)),
                  f"cannot create the folder {taken}: a file of that name exists"))  # fmt: skip
    cases.append((winners_args(db, tmp_path, *no_data, "--dataset", "imagefolder"),
                  "does not exist"))  # fmt: skip
    both = ("--top-k", "1", "--epochs", "1", "--no-mixup", "--mixup-alpha", "0.5")
    cases.append((winners_args(db, tmp_path, *both),
                  "--no-mixup and --mixup-alpha contradict each other: give one"))  # fmt: skip
    for args, message in cases:
        out = run_nas(*args)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "winners").exists()  # a refused run leaves no folder behind


def test_top_k_fills_up_from_the_next_fronts(tmp_path: Path, image_folder: Path) -> None:
    from nas.winners import select_winners
    from tests.conftest import make_study

    # cbam dominates the rest (best accuracy, and mhsa/self_attn have more params)
    study = make_study(
        tmp_path / "f.db", image_folder, {"none": 0.5, "cbam": 0.9, "mhsa": 0.7, "self_attn": 0.8}
    )
    front = [t.number for t in select_winners(study, None)]
    top3 = [t.number for t in select_winners(study, 3)]
    assert len(front) < 3 and top3[: len(front)] == front and len(top3) == 3


@pytest.mark.slow
def test_validation_every_epoch_and_the_test_split_once(
    front_study: tuple[Path, optuna.Study], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full training scores the held-out validation split after every epoch and the test
    split exactly once, at the end; both are recorded, and selection uses validation."""
    import torch

    from nas.data import load_dataset, validation_split
    from nas.training import Trainer, full_recipe
    from nas.winners import train_winner

    db, study = front_study
    data = load_dataset("imagefolder", study.user_attrs["nas_settings"]["data_dir"])
    scored: list[int] = []
    trained_on: list[int] = []
    evaluate, fit = Trainer.evaluate, Trainer.fit

    def counting_evaluate(self: Trainer, x: object = None, y: object = None, **kw: object) -> float:
        labels = self.eval_y if y is None else y
        scored.append(len(labels))  # type: ignore[arg-type]
        return evaluate(self, x, y, **kw)  # type: ignore[arg-type]

    def recording_fit(self: Trainer, *args: object, **kw: object) -> object:
        trained_on.append(len(self.train_y))
        return fit(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Trainer, "evaluate", counting_evaluate)
    monkeypatch.setattr(Trainer, "fit", recording_fit)
    winner = study.trials[2]  # cbam
    result = train_winner(
        study,
        winner,
        data,
        full_recipe(3).replace(batch_size=16),
        device=torch.device("cpu"),
        seed=0,
        out_dir=tmp_path / "winners",
    )
    split = validation_split(len(data.train_y))
    n_val, n_test = len(split.val), len(data.test_y)
    assert n_val != n_test
    assert scored == [n_val, n_val, n_val, n_test]  # 3 epochs on validation, test once
    assert trained_on == [len(split.train)]  # the validation images are never trained on
    attrs = reload(db).trials[2].user_attrs
    assert attrs["full_val_accuracy"] == result.val_accuracy == attrs["full_curve"][-1]
    assert attrs["full_accuracy"] == result.full_accuracy
    assert attrs["full_val_images"] == n_val


def test_winners_train_on_the_data_the_study_was_searched_on(tmp_path: Path) -> None:
    """``--dataset``/``--data-dir`` are pinned by the study: another data set, or another
    folder while the recorded one exists, is refused (it once trained, validated and chose
    on other images without a word); a folder moved elsewhere is taken."""
    import argparse

    from nas.cli.winners import searched_data
    from nas.errors import NasError

    searched = {"dataset": "imagefolder", "data_dir": str(tmp_path / "imgs")}
    (tmp_path / "imgs").mkdir()
    (tmp_path / "other").mkdir()

    def given(**kwargs: str | None) -> argparse.Namespace:
        return argparse.Namespace(**{"dataset": None, "data_dir": None, **kwargs})

    assert searched_data(given(), searched, "s") == ("imagefolder", str(tmp_path / "imgs"))
    same = given(dataset="imagefolder", data_dir=str(tmp_path / "imgs"))
    assert searched_data(same, searched, "s") == ("imagefolder", str(tmp_path / "imgs"))
    with pytest.raises(NasError, match=r"searched on --dataset imagefolder, not cifar10"):
        searched_data(given(dataset="cifar10"), searched, "s")
    with pytest.raises(NasError, match=r"searched on --data-dir .*imgs, not .*other: leave"):
        searched_data(given(data_dir=str(tmp_path / "other")), searched, "s")
    missing = given(data_dir=str(tmp_path / "typo"))  # the data layer says it is missing
    assert searched_data(missing, searched, "s") == ("imagefolder", str(tmp_path / "typo"))
    (tmp_path / "imgs").rmdir()  # the data moved to another folder: taken
    moved = searched_data(given(data_dir=str(tmp_path / "other")), searched, "s")
    assert moved == ("imagefolder", str(tmp_path / "other"))


@pytest.mark.slow
def test_another_recipe_is_refused_unless_it_replaces_the_results(
    front_study: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    """Winners fully trained with other settings would be compared by nas export --best
    (1 epoch against 2): a run with other settings is refused in one line, and --replace
    forgets the earlier results instead of overwriting some of them silently."""
    from nas.study.record import TrialRecord

    db, _ = front_study
    first = run_nas(*winners_args(db, tmp_path, "--top-k", "1", "--epochs", "1"))
    assert first.returncode == 0, first.stderr

    def full_epochs() -> dict[int, int]:
        records = {t.number: TrialRecord(t) for t in reload(db).trials}
        return {n: r.full_epochs for n, r in records.items() if r.full_epochs is not None}

    assert full_epochs() == {2: 1}  # cbam, the best proxy
    # the same --out-dir: trial 2's 1-epoch checkpoint there is started over, not resumed
    other = winners_args(db, tmp_path, "--top-k", "9", "--epochs", "2")
    refused = run_nas(*other)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "fully trained with other settings (trial 2: epochs 1; this run: epochs 2)" in (
        refused.stderr
    )
    assert "--replace" in refused.stderr and full_epochs() == {2: 1}  # nothing written
    # a run refused on its data forgets nothing either
    no_data = run_nas(*other, "--replace", "--data-dir", str(tmp_path / "nope"))
    assert no_data.returncode == 2 and "does not exist" in no_data.stderr
    assert full_epochs() == {2: 1}
    replaced = run_nas(*other, "--replace", "--no-mixup", "--batch-size", "500")
    assert replaced.returncode == 0, replaced.stderr
    assert "forgot the full-training results of 1 trial (2), trained with other" in (
        replaced.stdout
    )
    assert "the study has 4 trained candidates, fewer than --top-k 9" in replaced.stdout
    one_step = "note: --batch-size 500 is more than the 108 training images: each epoch is one step"
    assert one_step in replaced.stdout
    assert full_epochs() == {0: 2, 1: 2, 2: 2, 3: 2}


@pytest.mark.slow
def test_winners_refuse_images_changed_since_the_search_and_warn_on_fake_data(
    tmp_path: Path, tiny_space: Path
) -> None:
    """Winners trained on images added or removed since the search would be chosen on
    another split: refused in one line. Winners of a fake-data study say, as the search
    does, that their accuracies mean nothing."""
    import nas
    from nas.data.datasets import FAKE_WARNING
    from tests.conftest import make_image_folder

    images = make_image_folder(tmp_path / "imgs", classes=2, per_class=24, test_per_class=2)
    common = {"space": str(tiny_space), "proxy_epochs": 1, "proxy_subset": 16, "device": "cpu"}
    for name, data in (("real", {"dataset": "imagefolder", "data_dir": str(images)}),
                       ("fake", {"dataset": "fake"})):  # fmt: skip
        nas.Search(**common, **data, trials=1, proxy_val="all", study=name,
                   storage=f"sqlite:///{tmp_path}/{name}.db").run()  # fmt: skip
    next(iter(sorted((images / "train" / "class1").iterdir()))).unlink()
    args = ["--top-k", "1", "--epochs", "1", "--device", "cpu", "--batch-size", "64"]
    out = run_nas("train-winners", "--storage", f"sqlite:///{tmp_path}/real.db", "--study",
                  "real", "--out-dir", str(tmp_path / "w"), *args)  # fmt: skip
    last = out.stderr.strip().splitlines()[-1]  # after the decoding line
    assert out.returncode == 2 and out.stderr.count("nas: error:") == 1, out.stderr
    assert last.startswith("nas: error: study 'real' was searched on 48 training images in 2")
    assert "now holds 47 training" in last
    out = run_nas("train-winners", "--storage", f"sqlite:///{tmp_path}/fake.db", "--study",
                  "fake", "--out-dir", str(tmp_path / "f"), *args)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert FAKE_WARNING in " ".join(out.stderr.split())  # where the search says it
    help_text = " ".join(run_nas("train-winners", "--help").stdout.split())
    assert (
        "--dataset {cifar10," in help_text
        and "(default: the study's; another is refused)" in help_text
    )
