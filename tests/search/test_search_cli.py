"""``nas search`` end to end through a real subprocess, on a tiny image folder."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.errors import NasError
from nas.sampling import sample
from nas.space import load_space
from tests.conftest import ROOT, run_nas


def search_args(space: Path, data: Path, db: Path, *extra: str) -> list[str]:
    return [
        "search", "--space", str(space), "--dataset", "imagefolder", "--data-dir", str(data),
        "--proxy-epochs", "1", "--storage", f"sqlite:///{db}", "--study", "t", "--seed", "0",
        "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def load(db: Path) -> optuna.Study:
    return optuna.load_study(study_name="t", storage=f"sqlite:///{db}")


@pytest.mark.slow
def test_search_trains_records_and_resumes(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    out = run_nas(*search_args(tiny_space, image_folder, db, "--trials", "3"))
    assert out.returncode == 0, out.stderr
    assert "Pareto front" in out.stdout
    study = load(db)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    assert not study.get_trials(states=(TrialState.RUNNING,))
    for t in complete:
        assert {"arch", "params", "flops", "curve", "accuracy", "seconds", "device"} <= set(
            t.user_attrs
        )
        assert 0.0 <= t.values[0] <= 1.0 and t.values[1] == t.user_attrs["params"]
        assert len(t.user_attrs["curve"]) == 1 and t.user_attrs["device"] == "cpu"
    assert study.metric_names == ["val_accuracy", "params"]
    best = max(t.values[0] for t in complete)
    assert best > 1 / 3 + 0.1  # three classes: clearly above chance

    again = run_nas(*search_args(tiny_space, image_folder, db, "--trials", "4"))
    assert again.returncode == 0, again.stderr
    assert "1 trained in this run" in again.stdout
    study = load(db)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert [t.number for t in complete] == [0, 1, 2]  # the first three were not redone


@pytest.mark.slow
def test_tight_limit_rejects_without_training(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    report = sample(load_space(tiny_space), 40, seed=0, input_size=16, num_classes=3, flops=False)
    sizes = sorted(c.params for c in report.candidates if c.params)
    limit = sizes[len(sizes) // 2]
    db = tmp_path / "s.db"
    out = run_nas(
        *search_args(
            tiny_space,
            image_folder,
            db,
            "--trials",
            "3",
            "--param-limit",
            str(limit),
            "--sampler",
            "random",
        )
    )
    assert out.returncode == 0, out.stderr
    study = load(db)
    rejected = [t for t in study.trials if "rejected" in t.user_attrs]
    assert rejected, "the median limit should reject some candidates"
    for t in rejected:
        assert t.state == TrialState.PRUNED
        assert t.user_attrs["params"] > limit
        assert "params > limit" in t.user_attrs["rejected"]
        assert "curve" not in t.user_attrs and "flops" not in t.user_attrs
        assert t.constraints["params"] > 0
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    assert all(
        t.user_attrs["params"] <= limit for t in study.get_trials(states=(TrialState.COMPLETE,))
    )


@pytest.mark.slow
def test_flops_limit_rejects_with_its_reason_and_constraint(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    report = sample(load_space(tiny_space), 40, seed=0, input_size=16, num_classes=3)
    flops = sorted(c.flops for c in report.candidates if c.flops)
    limit = flops[len(flops) // 2]
    db = tmp_path / "s.db"
    out = run_nas(
        *search_args(tiny_space, image_folder, db, "--trials", "3", "--sampler", "random"),
        "--flops-limit",
        str(limit),
    )
    assert out.returncode == 0, out.stderr
    study = load(db)
    rejected = [t for t in study.trials if "rejected" in t.user_attrs]
    assert rejected, "the median FLOPs limit should reject some candidates"
    for t in rejected:
        assert t.state == TrialState.PRUNED
        assert t.user_attrs["flops"] > limit
        assert "FLOPs > limit" in t.user_attrs["rejected"]
        assert "curve" not in t.user_attrs
        assert t.constraints["params"] <= 0 < t.constraints["flops"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    for t in complete:
        assert t.user_attrs["flops"] <= limit and t.constraints["flops"] <= 0
    assert study.user_attrs["nas_settings"]["flops_limit"] == limit
    other = run_nas(
        *search_args(tiny_space, image_folder, db, "--trials", "4"), "--flops-limit", "1G"
    )
    assert other.returncode == 2 and "--flops-limit recorded" in other.stderr  # pinned


def test_flops_limit_below_every_candidate_is_one_line(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    out = run_nas(
        *search_args(tiny_space, image_folder, tmp_path / "s.db", "--trials", "1"),
        "--flops-limit",
        "10",
    )
    assert out.returncode == 2
    assert "below the cheapest candidate" in out.stderr and "Traceback" not in out.stderr


def test_sample_reports_both_limits(tiny_space: Path) -> None:
    loose = sample(load_space(tiny_space), 30, seed=0, input_size=16, num_classes=3)
    flops = sorted(c.flops for c in loose.candidates if c.flops)
    limit = flops[len(flops) // 2]
    report = sample(
        load_space(tiny_space), 30, seed=0, input_size=16, num_classes=3, flops_limit=limit
    )
    over = [c for c in report.candidates if c.flops is not None and c.flops > limit]
    assert over and all(not c.feasible and "FLOPs > limit" in str(c.reason) for c in over)
    assert report.rejected_by["FLOPs"] == len(over)
    assert report.to_dict()["flops_limit"] == limit
    assert sum(a for a, _ in report.by_attention.values()) == sum(
        c.arch is not None for c in report.candidates
    )
    with pytest.raises(NasError, match="needs FLOP counts"):
        sample(load_space(tiny_space), 3, flops=False, flops_limit=limit)


@pytest.mark.slow
def test_nan_loss_and_out_of_memory_fail_one_trial_each(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    out = run_nas(
        *search_args(tiny_space, image_folder, db, "--trials", "2"),
        env={"NAS_INJECT_FAULT": "nan@0,oom@1"},
    )
    assert out.returncode == 0, out.stderr
    study = load(db)
    t0, t1 = study.trials[0], study.trials[1]
    assert t0.state == TrialState.FAIL and "loss became nan" in t0.user_attrs["fail_reason"]
    assert t1.state == TrialState.FAIL and "out of memory" in t1.user_attrs["fail_reason"]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert "Traceback" not in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (signal.SIGINT, "interrupted by the user (Ctrl-C)"),
        (signal.SIGTERM, "stopped by SIGTERM (the machine or job was stopped, e.g. pre-empted)"),
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_fails_the_running_trial_and_prints_the_summary(
    tiny_space: Path, image_folder: Path, tmp_path: Path, sent: signal.Signals, reason: str
) -> None:
    """Ctrl-C, or SIGTERM (a pre-empted machine): the running trial fails with the reason
    naming the signal, nothing stays RUNNING, the summary says why, exit code 130."""
    db = tmp_path / "s.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nas",
            *search_args(tiny_space, image_folder, db, "--trials", "5", "--proxy-epochs", "3"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NAS_SLOW_EPOCH": "3", "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.5)
            if db.exists():
                try:
                    running = load(db).get_trials(states=(TrialState.RUNNING,))
                except Exception:
                    continue
                if any(t.user_attrs.get("curve") for t in running):
                    break
        else:
            pytest.fail("no trial started training in time")
        proc.send_signal(sent)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert f"study t: {reason}" in stdout
    assert "Traceback" not in stderr
    study = load(db)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    failed = study.get_trials(states=(TrialState.FAIL,))
    number = failed[0].number  # its retry is queued at once, for whichever worker trains next
    assert len(failed) == 1
    assert failed[0].user_attrs["fail_reason"].startswith(f"{reason}; retried as trial ")
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == number)
    assert retry.state == TrialState.WAITING
    assert f"trial {number} was interrupted; it is retried first as trial {retry.number}" in stderr
    if sent != signal.SIGINT:
        return
    # the summary says how to resume; that command retries the interrupted architecture
    # first, once, and says so
    resume = [line for line in stdout.splitlines() if line.startswith("next: ")]
    assert len(resume) == 1 and resume[0].startswith(f"next: nas search --storage sqlite:///{db}")
    command = (
        resume[0].removeprefix("next: ").replace("nas search", f"{sys.executable} -m nas search", 1)
    )
    out = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    retry = load(db).trials[retry.number]
    assert retry.params == failed[0].params and retry.state == TrialState.COMPLETE
    assert retry.user_attrs["sampled_by"] == "retry"
    assert load(db).trials[number].user_attrs["retried_as"] == retry.number
    assert f"trial {number} as {retry.number}" in out.stdout
    again = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "was interrupted" not in again.stderr  # once


def test_missing_data_folder_is_one_line(tiny_space: Path, tmp_path: Path) -> None:
    out = run_nas(*search_args(tiny_space, tmp_path / "nope", tmp_path / "s.db", "--trials", "1"))
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        f"nas: error: data folder {tmp_path / 'nope'} (--data-dir) does not exist"
    ]
    assert not (tmp_path / "s.db").exists()


def test_fake_data_says_it_is_for_smoke_tests(tiny_space: Path, tmp_path: Path) -> None:
    """Also: run again, the study already has its trials; the summary says so and prints the
    command that trains more, which runs as printed."""
    command = (
        "search",
        "--space",
        str(tiny_space),
        "--dataset",
        "fake",
        "--trials",
        "1",
        "--proxy-epochs",
        "1",
        "--proxy-subset",
        "64",
        "--proxy-val",
        "32",
        "--storage",
        f"sqlite:///{tmp_path}/s.db",
        "--study",
        "f",
        "--quiet",
        "--device",
        "cpu",
    )
    out = run_nas(*command)
    assert out.returncode == 0, out.stderr
    assert "smoke tests only" in out.stderr
    assert "study f: the study has 1 trained trial (" in out.stdout  # not "1 trained trials"
    assert "trial 0 training: " in out.stderr and ", 1 epoch\n" in out.stderr
    assert "to train more" not in out.stdout
    again = run_nas(*command)
    assert again.returncode == 0, again.stderr
    assert "0 trained in this run" in again.stdout
    (hint,) = [line for line in again.stdout.splitlines() if line.startswith("to train more: ")]
    printed = shlex.split(hint.removeprefix("to train more: ").split("  # ")[0])
    assert printed[:2] == ["nas", "search"] and printed[printed.index("--trials") + 1] == "2"
    more = run_nas(*printed[1:], "--quiet")
    assert more.returncode == 0, more.stderr
    assert (
        "the study has 2 trained trials (" in more.stdout and "1 trained in this run" in more.stdout
    )


def test_study_file_settings_and_command_line_precedence(tiny_space: Path, tmp_path: Path) -> None:
    from nas.cli.main import build_parser
    from nas.cli.search import source_from_args

    study_file = tmp_path / "study.toml"
    study_file.write_text(
        f'[search]\nspace = "{tiny_space}"\ndataset = "fake"\nparam_limit = "2M"\n'
        'trials = 7\nproxy_epochs = 2\nobjectives = "accuracy,flops"\n'
    )
    args = build_parser().parse_args(["search", str(study_file), "--trials", "9"])
    s = source_from_args(args).resolve(None, "new").settings
    assert (s.trials, s.limit("params"), s.proxy_epochs, s.objectives) == (
        9,
        2_000_000,
        2,
        ("accuracy", "flops"),
    )
    assert s.sampler == "auto"  # default
    bad = tmp_path / "bad.toml"
    bad.write_text("[search]\ntrails = 3\n")
    out = run_nas("search", str(bad))
    assert (
        out.returncode != 0
        and "unknown setting 'trails' in [search]; did you mean trials?" in out.stderr
    )


def test_a_study_file_finds_the_files_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study file kept with its space file and image folder works from any folder; a path
    that exists from where the command runs wins, and a shipped space's name stays a name."""
    from nas.search.settings import SearchSettings
    from nas.settings import read_table

    kept = tmp_path / "kept"
    (kept / "imgs").mkdir(parents=True)
    (kept / "mine.toml").write_text("")
    study_file = kept / "study.toml"
    study_file.write_text('[search]\nspace = "mine.toml"\ndata_dir = "imgs"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    table = read_table(study_file, "search", SearchSettings)
    assert table == {"space": str(kept / "mine.toml"), "data_dir": str(kept / "imgs")}
    (elsewhere / "mine.toml").write_text("")  # here wins: the path as written
    assert read_table(study_file, "search", SearchSettings)["space"] == "mine.toml"
    study_file.write_text('[search]\nspace = "small_cifar"\n')
    assert read_table(study_file, "search", SearchSettings)["space"] == "small_cifar"


def test_limit_below_the_smallest_candidate_is_refused_before_searching(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    out = run_nas(
        *search_args(
            tiny_space, image_folder, tmp_path / "s.db", "--trials", "1", "--param-limit", "100"
        )
    )
    assert out.returncode != 0
    assert "is below the cheapest candidate of space 'tiny'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_enqueue_presets_starts_from_the_presets_that_fit(tmp_path: Path) -> None:
    from nas.config import ArchConfig
    from nas.presets import preset
    from tests.conftest import DEFAULT_SPACE

    db = tmp_path / "p.db"
    out = run_nas(
        "search",
        "--space",
        str(DEFAULT_SPACE),
        "--dataset",
        "fake",
        "--param-limit",
        "300k",
        "--trials",
        "1",
        "--proxy-epochs",
        "1",
        "--proxy-subset",
        "64",
        "--proxy-val",
        "32",
        "--enqueue-presets",
        "--storage",
        f"sqlite:///{db}",
        "--study",
        "t",
        "--device",
        "cpu",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr
    assert (
        "queued presets that fit the limits: resnet20, resnet20-cbam, resnet20-selfattn, "
        "resnet20-mhsa"
    ) in out.stderr
    study = load(db)
    first = study.trials[0]
    assert first.user_attrs["preset"] == "resnet20" and first.state == TrialState.COMPLETE
    assert ArchConfig.from_dict(first.user_attrs["arch"]) == preset("resnet20")
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["preset"] for t in waiting] == [
        "resnet20-cbam",
        "resnet20-selfattn",
        "resnet20-mhsa",
    ]


def test_study_file_values_are_type_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[search]\ntrials = "5"\n')
    out = run_nas("search", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"nas: error: {bad}: setting trials must be an integer, got '5'"
    ]


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    first = run_nas(*search_args(tiny_space, image_folder, db, "--trials", "1"))
    assert first.returncode == 0, first.stderr
    again = run_nas(
        *search_args(tiny_space, image_folder, db, "--trials", "2", "--param-limit", "2M")
    )
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert lines == [
        "nas: error: study 't' keeps its pinned settings: --param-limit recorded 5.00M, "
        "given 2.00M. Drop the flag (or study-file line) to continue with the recorded value, "
        "or choose another --study"
    ]
    seed = run_nas(*search_args(tiny_space, image_folder, db, "--trials", "2", "--seed", "3"))
    assert seed.returncode == 2 and "--seed recorded 0, given 3" in seed.stderr
    more = run_nas(*search_args(tiny_space, image_folder, db, "--trials", "2"))
    assert more.returncode == 0, more.stderr  # more trials: a per-run setting


def test_worker_study_file_keeps_all_images(tmp_path: Path) -> None:
    from nas.search.settings import SearchSettings
    from nas.settings import read_table, write_table

    settings = SearchSettings(
        proxy_subset=None,
        proxy_val=None,
        data_dir="/data",
        timeout=30.0,
        objectives=("accuracy", "flops"),
        limits={"params": 5_000_000, "flops": 500_000_000},
        workers=3,
    )
    path = tmp_path / "w.toml"
    path.write_text(write_table(settings, "search", skip=("workers",)))
    again = SearchSettings.of(**read_table(path, "search", SearchSettings))
    assert again == settings.replace(workers=1)


def test_workers_on_shared_databases_get_different_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.search.study as opening
    from nas.search.settings import SearchSettings

    sqlite = SearchSettings(storage="sqlite:///x.db")
    here = opening.address_of(sqlite)
    assert opening.sampler_seed(sqlite, here, 2) == opening.sampler_seed(sqlite, here, 2)
    pg = SearchSettings(storage="postgresql+psycopg://u@h/db")
    shared = opening.address_of(pg)
    monkeypatch.setattr(opening, "worker_id", lambda: "host-a:100")
    a = opening.sampler_seed(pg, shared, 0)
    monkeypatch.setattr(opening, "worker_id", lambda: "host-b:100")
    assert opening.sampler_seed(pg, shared, 0) != a


def test_a_study_from_before_proxy_recipes_resumes_only_with_the_standard_one() -> None:
    """Studies recorded before ``proxy_recipe`` existed were trained with 'standard'."""
    from nas.search.settings import SearchSettings
    from nas.search.study import RECORD_KEY
    from nas.settings import SettingsSource, recorded

    settings = SearchSettings(space=str(ROOT / "search_spaces" / "small_cifar.toml"))
    old = recorded(settings)
    del old["proxy_recipe"]
    source = SettingsSource(SearchSettings, RECORD_KEY)
    resolved = source.resolve(old, "old")
    assert resolved.settings.proxy_recipe == "standard"  # the legacy value, not a default
    assert resolved.origins["proxy_recipe"] == "legacy"
    fast = SettingsSource(SearchSettings, RECORD_KEY, flags={"proxy_recipe": "fast"})
    with pytest.raises(NasError, match=r"--proxy-recipe recorded standard, given fast"):
        fast.resolve(old, "old")
