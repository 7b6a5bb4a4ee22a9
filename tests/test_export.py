"""``nas export``: round trips for every attention type, weights and ONNX, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

import nas
from nas.cli.main import main
from nas.config import ArchConfig
from nas.counting import count
from nas.models import build_model
from tests.conftest import KINDS, arch_for, make_study, run_nas


@pytest.fixture
def every_kind(tmp_path: Path, image_folder: Path) -> Path:
    db = tmp_path / "k.db"
    make_study(db, image_folder, {kind: 0.5 + i / 100 for i, kind in enumerate(KINDS)})
    return db


@pytest.mark.parametrize("index", range(len(KINDS)))
def test_export_round_trips_every_attention_type(
    every_kind: Path, tmp_path: Path, index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"{KINDS[index]}.json"
    code = main(
        [
            "export",
            "--storage",
            f"sqlite:///{every_kind}",
            "--study",
            "w",
            "--trial",
            str(index),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    original = ArchConfig.from_dict(arch_for(KINDS[index]))
    again = ArchConfig.from_file(out)
    assert again == original
    a, b = count(original), count(again)
    assert (a.params, a.flops) == (b.params, b.flops)
    assert doc["meta"]["params"] == a.params and doc["meta"]["flops"] == a.flops
    assert doc["meta"]["trial"] == index and doc["meta"]["study"] == "w"
    assert set(doc["meta"]["versions"]) >= {"torch", "optuna", "fvcore"}
    assert doc["meta"]["breakdown"][0]["name"] == "stem"
    assert sum(p.numel() for p in build_model(again).parameters()) == a.params


def test_best_yaml_and_count_config(every_kind: Path, tmp_path: Path) -> None:
    out = tmp_path / "best.yaml"
    res = run_nas(
        "export",
        "--storage",
        f"sqlite:///{every_kind}",
        "--study",
        "w",
        "--best",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert "highest proxy (validation) accuracy" in res.stdout
    doc = yaml.safe_load(out.read_text())
    assert doc["meta"]["trial"] == len(KINDS) - 1  # the highest proxy accuracy
    counted = run_nas("count", "--config", str(out), "--json")
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout)["params"] == doc["meta"]["params"]


def test_best_chooses_by_validation_never_by_test(tmp_path: Path, image_folder: Path) -> None:
    """Trial 0 has the better test accuracy, trial 1 the better full validation accuracy:
    --best must take trial 1 (a tool that peeks at the test split would take trial 0)."""
    db = tmp_path / "vt.db"
    make_study(
        db,
        image_folder,
        {"se": 0.6, "cbam": 0.5},
        extra={
            "se": {"full_val_accuracy": 0.70, "full_accuracy": 0.90, "full_epochs": 3},
            "cbam": {"full_val_accuracy": 0.80, "full_accuracy": 0.85, "full_epochs": 3},
        },
    )
    out = tmp_path / "best.json"
    res = run_nas(
        "export", "--storage", f"sqlite:///{db}", "--study", "w", "--best", "--out", str(out)
    )
    assert res.returncode == 0, res.stderr
    assert "highest validation accuracy after full training" in res.stdout
    doc = json.loads(out.read_text())
    assert doc["meta"]["trial"] == 1
    assert (doc["meta"]["full_val_accuracy"], doc["meta"]["full_accuracy"]) == (0.80, 0.85)


def test_best_prefers_full_training_and_weights_give_onnx(
    tmp_path: Path, image_folder: Path
) -> None:
    arch = ArchConfig.from_dict(arch_for("cbam"))
    torch.manual_seed(0)
    model = build_model(arch).eval()
    weights = tmp_path / "trained.pt"
    torch.save(model.state_dict(), weights)
    db = tmp_path / "f.db"
    make_study(
        db,
        image_folder,
        {"se": 0.9, "cbam": 0.6},
        extra={
            "cbam": {
                "full_val_accuracy": 0.74,
                "full_accuracy": 0.75,
                "full_epochs": 3,
                "weights": str(weights),
            }
        },
    )
    out = tmp_path / "exp" / "best.json"
    res = run_nas(
        "export",
        "--storage",
        f"sqlite:///{db}",
        "--study",
        "w",
        "--best",
        "--weights",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert "highest validation accuracy after full training" in res.stdout
    doc = json.loads(out.read_text())
    assert doc["meta"]["trial"] == 1 and doc["meta"]["full_accuracy"] == 0.75
    assert doc["meta"]["weights"] == "best.pt" and doc["meta"]["onnx"] == "best.onnx"
    # the three lines of the snippet load the identical model
    os.chdir(out.parent)
    scope: dict[str, object] = {}
    exec(doc["load"], scope)
    loaded = scope["model"]
    assert isinstance(loaded, nas.models.Network)
    x = torch.randn(3, 3, 16, 16)  # neither 1 nor the exporter's example batch of 2
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(loaded(x), expected, atol=1e-6)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out.with_suffix(".onnx")))
    (onnx_out,) = session.run(None, {"images": x[:1].numpy()})
    np.testing.assert_allclose(onnx_out, expected[:1].numpy(), atol=1e-4)
    (onnx_out,) = session.run(None, {"images": x.numpy()})
    np.testing.assert_allclose(onnx_out, expected.numpy(), atol=1e-4)


def test_damaged_or_foreign_weights_are_one_sentence(tmp_path: Path, image_folder: Path) -> None:
    """Weights cut short, or another model's, say so and what to do, not a traceback."""
    weights = tmp_path / "trained.pt"
    db = tmp_path / "d.db"
    make_study(db, image_folder, {"cbam": 0.6}, extra={"cbam": {"weights": str(weights)}})
    args = ("export", "--storage", f"sqlite:///{db}", "--study", "w", "--trial", "0")
    out = str(tmp_path / "x.json")
    for content, said in (
        (b"garbage\n", f"cannot read the trained weights {weights}: it is damaged or not a file"),
        (None, f"the trained weights {weights} are not trial 0's (Error(s) in loading"),
    ):
        if content is None:
            torch.save({"stem.weight": torch.zeros(1)}, weights)
        else:
            weights.write_bytes(content)
        res = run_nas(*args, "--weights", "--out", out)
        assert res.returncode != 0 and "Traceback" not in res.stderr
        assert said in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert "train trial 0 again with nas train-winners" in res.stderr


def test_pareto_writes_one_file_per_front_trial(tmp_path: Path, image_folder: Path) -> None:
    db = tmp_path / "p.db"
    make_study(db, image_folder, {"none": 0.6, "se": 0.7, "cbam": 0.8, "mhsa": 0.5})
    res = run_nas(
        "export",
        "--storage",
        f"sqlite:///{db}",
        "--study",
        "w",
        "--pareto",
        "--out",
        str(tmp_path / "front"),
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "front").iterdir()) == [
        "trial-0.json",
        "trial-1.json",
        "trial-2.json",
    ]
    into_a_file = run_nas(
        "export", "--storage", f"sqlite:///{db}", "--study", "w", "--pareto",
        "--out", str(tmp_path / "front" / "trial-0.json"),
    )  # fmt: skip
    assert into_a_file.returncode == 2 and into_a_file.stderr.strip() == (
        f"nas: error: --out {tmp_path / 'front' / 'trial-0.json'} is a file: with --pareto, "
        "--out is a folder that receives one file per Pareto-optimal trial (--out front/)"
    )


def test_bad_input(every_kind: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{every_kind}"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    optuna.create_study(study_name="empty", storage=url)
    cases = [
        (["--study", "nope", "--best", "--out", "x.json"], "no study named 'nope'"),
        (["--study", "empty", "--best", "--out", "x.json"], "has no trained trial yet"),
        (["--study", "w", "--trial", "99", "--out", "x.json"], "has no trial 99"),
        (["--study", "w", "--best", "--out", str(blocker / "x.json")], "cannot write"),
        (
            ["--study", "w", "--best", "--weights", "--out", str(tmp_path / "y.json")],
            "has no trained weights; run nas train-winners first",
        ),
    ]
    for args, message in cases:
        res = run_nas("export", "--storage", url, *args)
        assert res.returncode != 0 and message in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1


def test_unreachable_or_missing_default_storage(tmp_path: Path) -> None:
    res = run_nas("export", "--study", "nope", "--best", "--out", "x.json", cwd=tmp_path)
    assert res.returncode != 0 and "pass --storage URL" in res.stderr


def test_a_study_of_the_users_own_objective_exports_by_trial(tmp_path: Path) -> None:
    """A study whose trials ``nas.suggest`` drew for the user's own objective has no proxy
    accuracy: ``--trial`` writes any of its architectures and says why none has one (a
    rejection, the user's own score); ``--best``, ``nas report`` and ``nas.best`` say what
    to do instead of claiming the study was never run; ``nas search`` refuses the study, as
    the user's own."""
    from tests.conftest import DEFAULT_SPACE

    url = f"sqlite:///{tmp_path / 'own.db'}"

    def objective(trial: optuna.Trial) -> float:
        arch = nas.suggest(trial, str(DEFAULT_SPACE), param_limit="2M")
        return float(arch.stem_width)

    study = optuna.create_study(
        storage=url, study_name="own", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=12)
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    kept = next(t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    cut = next(t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    for trial, said in ((kept, "scored by your own objective: "), (cut, "rejected: ")):
        out = tmp_path / f"t{trial.number}.json"
        res = run_nas(
            "export",
            "--storage",
            url,
            "--study",
            "own",
            "--trial",
            str(trial.number),
            "--out",
            str(out),
        )
        assert res.returncode == 0, res.stderr
        assert f"no proxy accuracy ({said}" in " ".join(res.stdout.split())  # wrapped
        rebuilt = count(ArchConfig.from_file(out), flops=False)
        assert rebuilt.params == trial.user_attrs["params"]
    res = run_nas("export", "--storage", url, "--study", "own", "--best", "--out", "b.json")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "that your own objective scored (nas.suggest)" in res.stderr
    assert "nas export --trial N" in res.stderr
    with pytest.raises(nas.NasError, match="your own objective scored"):
        nas.best(study)
    res = run_nas(
        "export", "--storage", url, "--study", "own", "--trial", str(kept.number), "--weights",
        "--out", str(tmp_path / "w.json"),
    )  # fmt: skip
    assert res.returncode != 0 and "was not trained by nas" in res.stderr  # not train-winners
    res = run_nas("search", "--storage", url, "--study", "own", "--dataset", "fake")
    assert res.returncode != 0  # nas search does not take over the user's study
    assert res.stderr.strip().splitlines() == [
        "nas: error: study 'own' holds 12 trials that no nas search ran (your own Optuna "
        "study), and nas does not add its trials to them; choose another --study"
    ]


def test_an_exported_run_of_a_candidate_trained_twice_gives_the_mean_it_is_ranked_by(
    tmp_path: Path, image_folder: Path
) -> None:
    """TPE drew the se candidate again (a luckier run): ``--trial`` of that run says its own
    accuracy and the mean of both runs, by which every ranking counts the candidate."""
    db = tmp_path / "r.db"
    study = make_study(db, image_folder, {"se": 0.5, "cbam": 0.6})
    first = study.trials[0]
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.8, first.values[1]],
            params=first.params,
            distributions=first.distributions,
            user_attrs={**first.user_attrs, "accuracy": 0.8, "curve": [0.8]},
        )
    )
    again = study.trials[-1].number
    out = tmp_path / "again.json"
    args = ("export", "--storage", f"sqlite:///{db}", "--study", "w", "--trial", str(again))
    res = run_nas(*args, "--out", str(out))
    assert res.returncode == 0, res.stderr
    meta = json.loads(out.read_text())["meta"]
    assert meta["proxy_accuracy"] == 0.8
    assert meta["proxy_runs"] == {"trials": [0, again], "mean": pytest.approx(0.65)}
    assert (
        f"proxy val acc 0.8000 in this run, 0.6500 the mean of its 2 runs (trials 0, {again})"
        in " ".join(res.stdout.split())  # as wrapped to the terminal's width
    )
    single = tmp_path / "single.json"
    assert run_nas(*args[:-1], "1", "--out", str(single)).returncode == 0
    assert "proxy_runs" not in json.loads(single.read_text())["meta"]


def test_export_makes_the_folders_on_its_way_and_takes_a_folder_named_like_a_file(
    tmp_path: Path, image_folder: Path
) -> None:
    """``--out exports/2026/best.json`` makes both folders (scripts write dated folders);
    ``--pareto`` into an existing folder named ``front.json`` is a folder, not a file name."""
    db = tmp_path / "n.db"
    make_study(db, image_folder, {"se": 0.7, "cbam": 0.8})
    base = ("export", "--storage", f"sqlite:///{db}", "--study", "w")
    nested = tmp_path / "exports" / "2026" / "best.json"
    assert run_nas(*base, "--best", "--out", str(nested)).returncode == 0
    assert json.loads(nested.read_text())["meta"]["trial"] == 1
    folder = tmp_path / "front.json"
    folder.mkdir()
    res = run_nas(*base, "--pareto", "--out", str(folder))
    assert res.returncode == 0, res.stderr
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".json"]
