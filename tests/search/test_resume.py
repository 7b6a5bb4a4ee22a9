"""A resumed study keeps its settings: what a run does not give comes from the study's record,
an explicit conflict with a pinned setting is refused in one line, and ``--show-settings``
says where every value came from."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.search.settings import SearchSettings
from nas.settings import PINNED, setting
from tests.conftest import ROOT, run_nas, settings_rows

#: The settings the first run gives, none of them a default.
FIRST = {
    "--proxy-epochs": "2",
    "--proxy-subset": "64",
    "--proxy-val": "8",
    "--proxy-batch-size": "16",
    "--proxy-recipe": "fast",
    "--eta": "3",
    "--min-epochs": "1",
    "--min-members": "2",
    "--sampler": "random",
}


def _address(db: Path) -> list[str]:
    return ["--storage", f"sqlite:///{db}", "--study", "r", "--quiet"]


def _first_run(space: Path, data: Path, db: Path, trials: int, extra: tuple[str, ...] = ()) -> None:
    flags = [x for kv in FIRST.items() for x in kv]
    out = run_nas(
        "search", *_address(db), "--space", str(space), "--dataset", "imagefolder",
        "--data-dir", str(data), "--device", "cpu", "--trials", str(trials), *flags, *extra,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_a_resumed_study_and_a_second_worker_take_the_recorded_settings(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    """The first run records non-default settings and stops after its first trial (a
    timeout); then two workers started at once with no settings at all finish the study with
    the recorded ones."""
    db = tmp_path / "r.db"
    _first_run(tiny_space, image_folder, db, trials=5, extra=("--timeout", "1"))
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{db}")
    record = study.user_attrs["nas_settings"]
    assert sum(1 for t in study.trials if t.user_attrs.get("training")) < 5

    show = run_nas("search", *_address(db), "--show-settings")
    assert show.returncode == 0, show.stderr
    rows = settings_rows(show.stdout)
    for flag, value in FIRST.items():
        assert rows[flag] == (value, "recorded"), flag
    assert rows["--trials"] == ("5", "recorded")
    assert rows["--timeout"] == ("none", "default")  # per run: never taken from the record

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "nas", "search", *_address(db)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
        assert "64 training / 8 validation images" in err
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{db}")
    trained = [t for t in study.trials if t.user_attrs.get("training")]
    assert len(trained) == 5
    # every trial trained the recorded 2 epochs, or was stopped at the recorded rung 1
    assert all(len(t.user_attrs["curve"]) == 2 for t in trained if t.state == TrialState.COMPLETE)
    assert all(len(t.user_attrs["curve"]) in (1, 2) for t in trained)
    assert study.user_attrs["nas_settings"] == record

    conflict = run_nas("search", *_address(db), "--proxy-epochs", "3", "--eta", "2")
    assert conflict.returncode == 2
    lines = conflict.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--proxy-epochs recorded 2, given 3" in lines[0]
    assert "--eta recorded 3, given 2" in lines[0]
    more = run_nas("search", *_address(db), "--trials", "6")
    assert more.returncode == 0, more.stderr
    after = optuna.load_study(study_name="r", storage=f"sqlite:///{db}").user_attrs
    assert after["nas_settings"] == {**record, "trials": 6}  # a kept setting: replaced


def test_a_changed_default_still_resumes_an_old_study(
    tiny_space: Path, image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study recorded proxy_epochs 3 while it was the default; the default moves to 1 and
    the same command, without the flag, continues the study with 3."""
    import nas.cli.search as cli
    from nas.cli.main import main

    db = tmp_path / "d.db"
    command = [
        "search", *_address(db), "--space", str(tiny_space), "--dataset", "imagefolder",
        "--data-dir", str(image_folder), "--device", "cpu", "--proxy-subset", "32",
        "--proxy-val", "8", "--proxy-batch-size", "16", "--sampler", "random",
    ]  # fmt: skip
    assert main([*command, "--trials", "1"]) == 0
    old = SearchSettings.__dataclass_fields__["proxy_epochs"]

    @dataclasses.dataclass(frozen=True)
    class Moved(SearchSettings):
        proxy_epochs: int = setting(1, old.metadata["setting"].help, kind=PINNED)

    monkeypatch.setattr(cli, "SearchSettings", Moved)
    assert Moved().proxy_epochs == 1
    assert main([*command, "--trials", "2"]) == 0
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{db}")
    curves = [t.user_attrs["curve"] for t in study.trials if "curve" in t.user_attrs]
    assert [len(c) for c in curves] == [3, 3]
    assert study.user_attrs["nas_settings"]["proxy_epochs"] == 3


def test_show_settings_names_flags_files_and_defaults(tmp_path: Path, tiny_space: Path) -> None:
    study_file = tmp_path / "s.toml"
    study_file.write_text(f'[search]\nspace = "{tiny_space}"\nproxy_epochs = 4\n')
    db = tmp_path / "none.db"
    out = run_nas(
        "search", str(study_file), "--storage", f"sqlite:///{db}", "--proxy-epochs", "5",
        "--param-limit", "2M", "--proxy-val", "all", "--show-settings",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = settings_rows(out.stdout)
    assert rows["--proxy-epochs"] == ("5", "flag")
    assert rows["--param-limit"] == ("2.00M", "flag")
    assert rows["--proxy-val"] == ("all", "flag")  # not "none"
    assert rows["--flops-limit"] == ("none", "default")
    assert rows["--space"] == (str(tiny_space), "study file")
    assert rows["--proxy-subset"] == ("5000", "default")
    assert "would create" in out.stdout
    assert not db.exists()  # showing creates nothing


def test_fidelity_show_settings(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    out = run_nas(
        "fidelity", "--storage", f"sqlite:///{db}", "--panel", "30", "--ladder", "1x500,2xALL",
        "--show-settings",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = settings_rows(out.stdout)
    assert rows["--panel"] == ("30", "flag")
    assert rows["--ladder"] == ("1x500,2xall", "flag")
    assert rows["--reference"] == ("30xall", "default")
    assert not db.exists()


def test_enqueue_presets_respects_the_flops_limit(tmp_path: Path) -> None:
    """resnet20 (41.0M FLOPs) and its attention variants fit 300k params; a 41.1M FLOPs limit
    keeps only the presets at or below it."""
    from nas.budget import Budget
    from nas.presets import preset
    from nas.search.study import enqueue_presets
    from nas.space import load_space

    space = load_space("search_spaces/attention_resnet.toml")
    names = ["resnet20", "resnet20-cbam", "resnet20-selfattn", "resnet20-mhsa"]
    flops = {n: Budget().check(preset(n), wanted=("flops",)).flops or 0 for n in names}
    limit = flops["resnet20"] + 1_000
    assert any(f > limit for f in flops.values())

    class _Data:
        in_channels, input_size, num_classes = 3, 32, 10

    study = optuna.create_study(directions=["maximize", "minimize"])
    budget = Budget({"params": 300_000, "flops": limit})
    queued = enqueue_presets(study, space, budget, _Data())  # type: ignore[arg-type]
    assert queued == [n for n in names if flops[n] <= limit]
    assert "resnet20" in queued and len(queued) < len(names)
    without = enqueue_presets(study, space, Budget({"params": 300_000}), _Data())  # type: ignore[arg-type]
    assert without == names  # the parameter limit alone admits all four


def test_a_recorded_space_file_is_held_to_its_content_wherever_it_lies(tmp_path: Path) -> None:
    """The study pins its space file's content: an edited file is refused, a moved or
    deleted one is named as the study's (not "did you mean" some other file), a copy given
    by path is taken, a copy with other content is refused."""
    from nas.errors import NasError
    from nas.search.study import RECORD_KEY
    from nas.settings import SettingsSource

    space = tmp_path / "mine.toml"
    space.write_text((ROOT / "search_spaces" / "small_cifar.toml").read_text())
    (tmp_path / "mien.toml").write_text("")  # a near name the old message pointed to

    def resolve(record: dict[str, object] | None, **flags: object) -> SearchSettings:
        source = SettingsSource(SearchSettings, RECORD_KEY, flags=flags)
        settings: SearchSettings = source.resolve(record, "s").settings
        return settings

    record = SettingsSource(SearchSettings, RECORD_KEY, flags={"space": str(space)})
    recorded = record.resolve(None, "s").to_record()
    assert resolve(recorded).space == str(space)
    space.write_text(space.read_text() + "\n# edited\n")
    with pytest.raises(NasError, match=r"whose content has changed since; restore the file"):
        resolve(recorded)
    copy = tmp_path / "copy.toml"
    copy.write_text(space.read_text())
    with pytest.raises(NasError, match=r"space .*copy\.toml has other content than the recorded"):
        resolve(recorded, space=str(copy))
    copy.write_text((ROOT / "search_spaces" / "small_cifar.toml").read_text())
    space.unlink()
    with pytest.raises(NasError) as gone:
        resolve(recorded)
    assert str(gone.value) == (
        f"study 's' was created with --space {space}, which is no longer there; give a copy "
        "of it with --space FILE (its content is checked), or choose another --study"
    )
    assert resolve(recorded, space=str(copy)).space == str(copy)


def test_a_study_whose_image_folder_moved_resumes_from_its_new_place(
    tmp_path: Path, tiny_space: Path
) -> None:
    """The data folder is pinned: another one is refused while the recorded folder exists,
    and taken (for this run; the record keeps the first) once it is gone, as when the data
    moved or another machine mounts it elsewhere. Without one, the refusal says so."""
    import nas
    from nas.errors import NasError
    from nas.study.record import StudyRecord
    from tests.conftest import make_image_folder

    first, moved = tmp_path / "first", tmp_path / "moved"
    make_image_folder(first, classes=2, per_class=24, test_per_class=2)
    make_image_folder(moved, classes=2, per_class=24, test_per_class=2)
    settings = {
        "proxy_epochs": 1,
        "proxy_subset": 16,
        "proxy_val": "all",
        "device": "cpu",
        "storage": f"sqlite:///{tmp_path}/m.db",
        "study": "m",
    }
    nas.Search(space=str(tiny_space), dataset="imagefolder", data_dir=str(first), trials=1,
               **settings).run()  # fmt: skip
    with pytest.raises(NasError, match=r"keeps its pinned settings: data_dir recorded"):
        nas.Search(data_dir=str(moved), trials=2, **settings).run()  # the first is still there
    first.rename(tmp_path / "gone")
    with pytest.raises(NasError) as refused:
        nas.Search(trials=2, **settings).run()
    assert str(refused.value).endswith(
        "the study recorded that folder; if its images moved (or this machine mounts them "
        "elsewhere), give their place with data_dir DIR"
    ) and str(first) in str(refused.value)
    said: list[str] = []
    study = nas.Search(data_dir=str(moved), trials=2, **settings).run(log=said.append)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert f"note: the study's folder {first} is not on this machine; this run reads the same " \
        f"images from {moved} (the record keeps the first)" in said  # fmt: skip
    assert StudyRecord(study).settings["data_dir"] == str(first)


def test_every_worker_of_a_study_judges_heartbeats_by_its_grace_period(
    tmp_path: Path, tiny_space: Path
) -> None:
    """A worker with a shorter grace period than the others failed their healthy trials
    (they beat every 10 s; it called 3 s of silence death): the study keeps its grace
    period, and a worker given another is refused before it touches a trial."""
    import nas
    from nas.errors import NasError

    given = {
        "space": str(tiny_space), "dataset": "fake", "trials": 1, "proxy_epochs": 1,
        "proxy_subset": 64, "proxy_val": 32, "device": "cpu", "enqueue_presets": False,
        "storage": f"sqlite:///{tmp_path / 'g.db'}", "study": "g",
    }  # fmt: skip
    study = nas.Search(**given).run()
    from nas.study.record import StudyRecord

    assert StudyRecord(study).settings["grace_period"] == 60
    with pytest.raises(NasError, match="grace_period recorded 60, given 3"):
        nas.Search(**{**given, "trials": 2, "grace_period": 3}).run()
    assert len(optuna.load_study(study_name="g", storage=given["storage"]).trials) == 1
    # a study of an earlier version recorded none: the run says it keeps one now, once
    record = StudyRecord(study)
    record.set("nas_settings", {k: v for k, v in record.settings.items() if k != "grace_period"})
    said: list[str] = []
    nas.Search(**{**given, "trials": 2}).run(log=said.append)
    nas.Search(**{**given, "trials": 3}).run(log=said.append)
    kept = "note: the study now keeps grace_period 60 (it recorded none); later runs keep it too"
    assert said.count(kept) == 1 and [x for x in said if x.startswith("note:")] == [kept]


def test_a_study_whose_images_changed_is_refused_and_an_old_one_learns_them(
    tmp_path: Path, tiny_space: Path
) -> None:
    """Images removed, added or moved to another class since the study began: new trials
    would be scored on another validation split, so the study is not continued (the folder
    may move, its images may not change); a study recorded before this check learns its
    data at its next start."""
    import nas
    from nas.data.datasets import DATA_KEY
    from nas.errors import NasError
    from nas.study.record import SEARCH_SETTINGS, StudyRecord
    from tests.conftest import make_image_folder

    images = make_image_folder(tmp_path / "imgs", classes=2, per_class=24, test_per_class=2)
    settings = {
        "space": str(tiny_space), "dataset": "imagefolder", "data_dir": str(images),
        "proxy_epochs": 1, "proxy_subset": 16, "proxy_val": "all", "device": "cpu",
        "storage": f"sqlite:///{tmp_path}/d.db", "study": "d",
    }  # fmt: skip
    study = nas.Search(trials=1, **settings).run()
    recorded = StudyRecord(study).settings[DATA_KEY]
    assert recorded["train"] == 48 and recorded["classes"] == 2 and "test" not in recorded
    removed = sorted((images / "train" / "class0").iterdir())[:2]
    for f in removed:
        f.unlink()
    with pytest.raises(NasError) as refused:
        nas.Search(trials=2, **settings).run()
    assert str(refused.value) == (
        f"study 'd' was searched on 48 training images in 2 classes; {images} now holds 46 "
        "training images in 2 classes: scores on them would not compare with its trials'; "
        "restore the images (or search them in a new study)"
    )
    make_image_folder(images, classes=2, per_class=24, test_per_class=2)  # restored
    first = sorted((images / "train" / "class0").iterdir())[0]
    first.rename(images / "train" / "class1" / "zz-moved.png")
    with pytest.raises(NasError, match="now holds as many, with other labels"):
        nas.Search(trials=2, **settings).run()
    (images / "train" / "class1" / "zz-moved.png").rename(first)
    for f in (images / "test" / "class0").iterdir():  # the search never reads the test split
        f.unlink()
    old = {k: v for k, v in StudyRecord(study).settings.items() if k != DATA_KEY}
    study.set_user_attr(SEARCH_SETTINGS, old)  # as an earlier version recorded it
    study = nas.Search(trials=2, **settings).run()
    assert StudyRecord(study).settings[DATA_KEY] == recorded
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


def test_a_study_keeps_a_space_that_an_earlier_version_took_and_says_why(
    tmp_path: Path, tiny_space: Path
) -> None:
    """A space file a study searched is pinned by its content: a check added later (here a
    knob no type of the space takes) must not strand the study, since the file cannot be
    changed; it is told, while a new study is refused."""
    import nas
    from nas.errors import NasError
    from nas.space.space import space_sha1
    from nas.study.record import SEARCH_SETTINGS, StudyRecord

    old = tmp_path / "old.toml"
    old.write_text(tiny_space.read_text() + "heads = [2, 4]\n")  # mhsa's, not sampled here
    settings = {"dataset": "fake", "proxy_epochs": 1, "proxy_subset": 16, "proxy_val": 8,
                "device": "cpu", "storage": f"sqlite:///{tmp_path}/o.db"}  # fmt: skip
    with pytest.raises(NasError, match=r"attention\.heads: no attention type of this space"):
        nas.Search(space=str(old), trials=1, study="new", **settings).run()
    study = nas.Search(space=str(tiny_space), trials=1, study="o", **settings).run()
    record = StudyRecord(study).settings  # as an earlier version recorded the old file
    study.set_user_attr(
        SEARCH_SETTINGS, {**record, "space": str(old), "space_sha1": space_sha1(old)}
    )
    said: list[str] = []
    study = nas.Search(trials=2, study="o", **settings).run(log=said.append)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    told = "\n".join(said)
    assert "warning: attention.heads: no attention type of this space takes it (it samples " \
        "none, se, cbam, spatial; mhsa would); remove it or add such a type (kept: the study " \
        "searched this space)" in told  # fmt: skip
