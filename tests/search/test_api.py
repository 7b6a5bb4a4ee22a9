"""The Python API: ``nas.suggest`` inside a user's own Optuna objective, and ``nas.Search``,
which runs what ``nas search`` runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nas
from nas.errors import NasError
from nas.search.settings import SearchSettings
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
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()  # its draw: 313M FLOPs; the space's cheapest: 1.52M
    with pytest.raises(optuna.TrialPruned, match=r"FLOPs > limit 2\.00M"):  # fits 1G params
        nas.suggest(trial, space, param_limit="1G", flops_limit="2M")
    record = TrialRecord(study.trials[0])
    assert (record.rejected or "").endswith("FLOPs > limit 2.00M") and record.flops
    assert record.trial.constraints["flops"] > 0 and record.trial.constraints["params"] <= 0
    with pytest.raises(NasError, match=r"unknown limit.*param_limt.*valid: param_limit"):
        nas.suggest(study.ask(), space, param_limt="5M")
    for wrong in ({"num_classes": 0}, {"input_size": -3}, {"in_channels": 2.5}):
        ((name, value),) = wrong.items()  # named, not blamed on the space ("cannot be built")
        with pytest.raises(NasError, match=rf"^{name} must be a positive integer .*{value}$"):
            nas.suggest(study.ask(), space, **wrong)  # type: ignore[arg-type]


def test_suggest_keeps_the_default_parameter_limit_beside_a_latency_limit() -> None:
    """As ``nas search --latency-limit`` keeps the 5M parameter limit, so does ``nas.suggest``:
    every candidate is counted (params first), a latency rejection records its size too."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match=r"latency > limit"):
        nas.suggest(trial, str(DEFAULT_SPACE), latency_limit="1us")
    record = TrialRecord(study.trials[0])
    assert record.params is not None and record.value("latency") is not None
    constraints = record.trial.constraints
    assert constraints["params"] == record.params - 5_000_000 and constraints["latency"] > 0
    assert nas.search.objective.parse_limits({"latency_limit": "2ms"}) == {
        "params": 5_000_000,
        "latency": 2.0,
    }


def test_search_from_python_runs_and_resumes_a_study(
    tiny_space: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
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
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default, as a user has it
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study = nas.Search(trials=1, **settings).run()
        after = optuna.logging.get_verbosity()
    finally:
        optuna.logging.set_verbosity(before)
    assert [str(w.message) for w in caught] == []  # quiet: no "experimental" warnings
    assert capfd.readouterr().err == ""  # nor Optuna's log lines
    assert after == optuna.logging.INFO  # the user's verbosity, given back
    assert isinstance(study, optuna.Study)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 1
    again = nas.Search(trials=2, **settings).run()  # the same study, one more trained trial
    assert again.study_name == "api"
    assert len(again.get_trials(states=(TrialState.COMPLETE,))) == 2
    with pytest.warns(UserWarning, match=r"already had 2 trained trials.*trials=4 trains 2 more"):
        nas.Search(trials=2, **settings).run()  # the study has its trials: nothing trained
    assert len(again.get_trials(states=(TrialState.COMPLETE,))) == 2
    with pytest.raises(NasError) as refused:  # named as the Python user named it
        nas.Search(trials=3, **{**settings, "proxy_epochs": 2}).run()
    assert str(refused.value) == (
        "study 'api' keeps its pinned settings: proxy_epochs recorded 1, given 2. Leave the "
        "setting (or study-file line) out to continue with the recorded value, or choose "
        "another study"
    )
    said: list[str] = []
    nas.Search(trials=3, **settings).run(log=said.append)
    assert "trials: 2 -> 3, recorded for later runs" in said


def test_settings_that_do_nothing_are_said(tiny_space: Path, tmp_path: Path) -> None:
    """--enqueue-presets on a space that holds no preset, and a --min-epochs no rung lies
    above, once did nothing without a word."""
    said: list[str] = []
    nas.Search(
        space=str(tiny_space), dataset="fake", param_limit="1M", trials=1, proxy_epochs=1,
        proxy_subset=64, proxy_val=32, proxy_batch_size=16, device="cpu", enqueue_presets=True,
        min_epochs=2, latency_batch=4, storage=f"sqlite:///{tmp_path}/p.db", study="p",
    ).run(log=said.append)  # fmt: skip
    told = "\n".join(said)
    assert f"queued no preset: none lies in space {tiny_space.stem!r} within the limits " in told
    never = "note: early stopping never acts: min_epochs 2 (its first rung) is not below "
    assert never + "proxy_epochs 1" in told
    assert (  # a batch for measurements the study does not make
        "note: latency_batch 4 does nothing: the study measures no latency or memory" in told
    )


def test_settings_errors_from_python_name_the_keyword_not_the_flag(
    tiny_space: Path, tmp_path: Path
) -> None:
    """A Python user never typed ``--trials``: each refusal names the keyword they gave, and
    values Python can pass but a flag cannot (NaN, infinity) are refused as firmly, before
    the study database exists (a NaN limit once failed every trial in Optuna)."""
    storage = f"sqlite:///{tmp_path}/py.db"
    for given, said in (
        ({"param_limit": float("nan")}, "param_limit must be a positive number, got nan"),
        ({"param_limit": -1}, "param_limit must be a positive number, got -1"),
        ({"flops_limit": float("inf")}, "flops_limit must be a positive number, got inf"),
        ({"proxy_lr": -1.0}, "proxy_lr must be a positive number, got -1"),
        ({"db_retry": float("nan")}, "db_retry must be a finite number, got nan"),
    ):
        with pytest.raises(NasError) as refused:
            nas.Search(space=str(tiny_space), dataset="fake", storage=storage, **given).run()
        assert str(refused.value) == said
    assert not (tmp_path / "py.db").exists()
    with pytest.raises(NasError, match=r"^trials must be at least 1, got 0$"):
        nas.Search(trials=0, dataset="fake", device="cpu").run()
    with pytest.raises(NasError, match=r"^proxy_subset 100000: this data set has 1,800 "):
        nas.Search(space=str(tiny_space), dataset="fake", proxy_subset=100_000).run()
    # what the data layer says in flags reaches a Python user in keywords
    with pytest.raises(NasError) as refused:
        nas.Search(space=str(tiny_space), dataset="imagefolder", storage=storage).run()
    assert str(refused.value) == "dataset='imagefolder' needs data_dir=DIR (DIR/train/<class>/*)"


def test_search_settings_by_name_are_checked() -> None:
    with pytest.raises(NasError, match=r"unknown setting.*trails.*valid:.*trials"):
        nas.Search(trails=3)
    with pytest.raises(NasError, match="setting param_limit: cannot read parameter limit"):
        nas.Search(param_limit="5X")
    # a value no study could take is refused when the search is made, whatever its type,
    # not seconds later when it runs
    for given, said in (
        ({"trials": 0}, "trials must be at least 1, got 0"),
        ({"proxy_epochs": 1.5}, "setting proxy_epochs must be an integer, got 1.5"),
        ({"sampler": "nsga"}, "unknown sampler 'nsga'; did you mean nsga2?"),
        # refused when made, not when run (argparse's choices check only the command line)
        (
            {"dataset": "cifar11"},
            "unknown data set 'cifar11'; did you mean cifar10? valid: cifar10, cifar100, mnist, "
            "fashion-mnist, imagefolder, fake",
        ),
        ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N (or mps, xpu), got gpu"),
        (
            {"val_fraction": 2.0},
            "val_fraction must be between 0 and 1 (the share of the training images held "
            "out), got 2",
        ),
    ):
        with pytest.raises(NasError) as refused:
            nas.Search(**given)
        assert str(refused.value) == said
    # settings built as the dataclass are Python's too (``settings=`` of nas.Search)
    with pytest.raises(NasError) as refused:
        nas.search.SearchSettings(trials=0, proxy_subset=1)
    assert (
        str(refused.value)
        == "trials must be at least 1, got 0; proxy_subset must be at least 2, got 1"
    )


def test_search_takes_the_study_file_by_name_and_objectives_as_a_list(tmp_path: Path) -> None:
    """What a Python user writes first: ``study_file=`` as the docstring names it, and the
    objectives as a list; both read as the positional file and ``"accuracy,flops"`` do."""
    from nas.search.api import source_of

    study_file = tmp_path / "s.toml"
    study_file.write_text("[search]\ntrials = 7\n")
    search = nas.Search(study_file=study_file, objectives=["accuracy", "flops"])
    assert search.source.file == {"trials": 7}
    assert search.source.flags == source_of(given={"objectives": "accuracy,flops"}).flags
    assert search.source.flags["objectives"] == ("accuracy", "flops")
    with pytest.raises(NasError, match=r"^setting objectives: objectives 'acc,flops' must start"):
        nas.Search(objectives=["acc", "flops"])
    with pytest.raises(NasError, match=r"^setting objectives must be a list of strings, got"):
        nas.Search(objectives=[1, 2]).run()
    paths = nas.Search(space=Path("a.toml"), data_dir=tmp_path, storage="sqlite:///x.db")
    assert paths.source.flags["space"] == "a.toml"  # a pathlib.Path, as a path's text
    assert paths.source.flags["data_dir"] == str(tmp_path)


def test_suggest_takes_a_parsed_space_file_and_refuses_what_is_no_space() -> None:
    import tomllib

    raw = tomllib.loads(DEFAULT_SPACE.read_text())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    from_dict = nas.suggest(study.ask(), raw, param_limit="1G")
    again = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert from_dict == nas.suggest(again.ask(), str(DEFAULT_SPACE), param_limit="1G")
    for wrong in (None, 3):
        with pytest.raises(NasError, match=r"^space must be a space file's path or name, "):
            nas.suggest(study.ask(), wrong)


def test_make_sampler_gives_a_users_study_the_nsga2_that_sees_rejections() -> None:
    """Optuna's NSGA-II builds generations from COMPLETE trials only; the one
    ``nas.make_sampler`` gives counts every candidate of a generation, rejected ones too."""
    from nas.study.nsga2 import RejectionAwareNSGAII

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        arch = nas.suggest(trial, "small_cifar", param_limit="60k")
        return float(arch.stem_width), float(trial.user_attrs["params"])

    def generations(sampler: optuna.samplers.BaseSampler) -> dict[int, list[str]]:
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.optimize(objective, n_trials=24)
        key = f"{type(sampler).__name__}:generation"
        out: dict[int, list[str]] = {}
        for t in study.trials:
            out.setdefault(t.system_attrs[key], []).append(t.state.name)
        return out

    ours = nas.make_sampler("nsga2", seed=0, trials=16, objectives=2)
    assert isinstance(ours, RejectionAwareNSGAII)
    counted = generations(ours)  # population 4: every candidate, rejected or not, counts
    assert all(len(states) == 4 for states in list(counted.values())[:-1])
    assert any("PRUNED" in states for states in counted.values())
    plain = generations(optuna.samplers.NSGAIISampler(population_size=4, seed=0))
    assert any(len(states) > 4 for states in plain.values())  # rejections on top: unseen
    with pytest.raises(NasError, match=r"unknown sampler 'nsga'; did you mean nsga2\?"):
        nas.make_sampler("nsga", seed=0)
    wrong = [
        ({"seed": "0"}, "seed must be a non-negative integer, got '0'"),
        ({"seed": 0, "trials": 0}, "trials must be a positive integer, got 0"),
        ({"seed": 0, "objectives": 0}, "objectives must be a positive integer, got 0"),
    ]
    for given, message in wrong:
        with pytest.raises(NasError, match=f"^{message}$"):
            nas.make_sampler("tpe", **given)
    with pytest.raises(NasError, match=r"^nas.suggest needs the trial your objective is given"):
        nas.suggest(None, "small_cifar")  # type: ignore[arg-type]


def test_suggest_refuses_at_once_a_limit_no_candidate_of_the_space_meets() -> None:
    study = optuna.create_study()
    with pytest.raises(NasError, match=r"below the cheapest candidate .*raise param_limit or use"):
        nas.suggest(study.ask(), str(DEFAULT_SPACE), param_limit="1k")
    assert study.trials[0].params == {}  # refused before anything was drawn


def test_python_settings_and_limits_say_what_was_meant() -> None:
    with pytest.raises(NasError, match=r"param_limt; did you mean param_limit\? valid: "):
        nas.Search(param_limt="150k")
    with pytest.raises(NasError, match=r"flop_limit; did you mean flops_limit\? valid: "):
        nas.suggest(optuna.create_study().ask(), str(DEFAULT_SPACE), flop_limit="1M")


def _trial(preset: str, accuracy: float, params: int) -> optuna.trial.FrozenTrial:
    arch = nas.preset(preset).to_dict()
    return optuna.trial.create_trial(
        values=[accuracy, params],
        user_attrs={"accuracy": accuracy, "params": params, "arch": arch},
    )


def test_best_is_the_trial_export_picks_not_the_first_of_the_front() -> None:
    """Both trials are on the front, in trial order: ``best_trials[0]`` is the small, less
    accurate one; ``nas.best`` is the most accurate, as ``nas export --best`` says."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials([_trial("resnet20", 0.2, 10_000), _trial("resnet20-cbam", 0.3, 20_000)])
    assert [t.number for t in study.best_trials] == [0, 1]
    assert nas.best(study).number == 1
    empty = optuna.create_study(study_name="empty", directions=["maximize", "minimize"])
    with pytest.raises(NasError, match="'empty' has no trained trial yet"):
        nas.best(empty)
    plain = optuna.create_study(study_name="plain")  # a user's own study, no nas.suggest
    plain.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(NasError, match=r"'plain' has 2 complete trials, none of them an arch"):
        nas.best(plain)


def test_a_study_another_worker_recorded_meanwhile_is_resolved_against_its_record(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    """Two workers start on a new study at the same instant: both find no record, and the
    other one creates and records it first. This worker then resolves its settings again,
    against that record (its pinned objectives and proxy epochs), instead of refusing the
    study for the objectives it would have chosen alone or recording its own."""
    from nas.search.api import source_of
    from nas.search.study import open_search

    base = {
        "space": str(tiny_space),
        "dataset": "imagefolder",
        "data_dir": str(image_folder),
        "param_limit": "1M",
        "storage": f"sqlite:///{tmp_path / 's.db'}",
        "study": "race",
        "device": "cpu",
        "enqueue_presets": False,
    }
    checked: list[tuple[str, ...]] = []

    def the_other_worker_records_first(settings: object) -> None:
        checked.append(settings.objectives)  # type: ignore[attr-defined]
        if len(checked) == 1:  # after this worker read no record, before it takes the lock
            other = source_of(given={**base, "objectives": "accuracy,flops", "proxy_epochs": 2})
            open_search(other, say=lambda text: None)

    opened = open_search(source_of(given=base), say=lambda text: None,
                         check=the_other_worker_records_first)  # fmt: skip
    assert checked == [("accuracy", "params"), ("accuracy", "flops")]
    assert opened.settings.objectives == ("accuracy", "flops")
    assert opened.settings.proxy_epochs == 2
    assert [d.name for d in opened.study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert opened.study.metric_names == ["val_accuracy", "flops"]


def test_a_candidate_that_cannot_be_measured_fails_with_its_reason(
    tiny_space: Path, image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error while a candidate is drawn and counted (before any training) fails its trial
    with the reason recorded and told, so that the study, the monitor, the summary and the
    stop say why; Optuna's own warning and traceback stay out of a Python user's stderr."""
    from typing import Any

    from nas.search.evaluate import ProxyEvaluator
    from nas.search.events import SilentMonitor
    from nas.search.loop import Hooks

    class BrokenMeter(ProxyEvaluator):
        def measure(self, candidate: Any, metric: str) -> float:
            raise RuntimeError("the meter broke")

    told: list[tuple[int, str, str]] = []

    class Told(SilentMonitor):
        def trial_finished(self, number: int, status: str, detail: str) -> None:
            told.append((number, status, detail))

    outcome = nas.Search(
        space=str(tiny_space), dataset="imagefolder", data_dir=str(image_folder), trials=1,
        param_limit="1M", sampler="random", storage=f"sqlite:///{tmp_path / 's.db'}",
        study="broken", device="cpu", early_stopping="off",
    ).outcome(Told(), hooks=Hooks(make_evaluator=BrokenMeter.of))  # fmt: skip
    assert told == [(n, "failed", "RuntimeError: the meter broke") for n in range(10)]
    assert "Traceback" not in capsys.readouterr().err
    failed = outcome.study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 10
    assert {TrialRecord(t).fail_reason for t in failed} == {"RuntimeError: the meter broke"}
    assert outcome.stop_reason.endswith("the last one: RuntimeError: the meter broke")
    assert outcome.exit_code == 1


def test_ctrl_c_while_a_trial_is_set_up_stops_run_and_the_next_run_retries_it(
    tiny_space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C before the proxy's first epoch (here while its trainer is built) records the
    trial as interrupted, as one inside an epoch does, so the next run retries it; and
    ``run()`` raises KeyboardInterrupt, so a script of several searches stops."""
    import nas.proxy.context as context
    from nas.study.cleanup import INTERRUPTED

    def pressed_ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    search = nas.Search(
        space=str(tiny_space),
        dataset="fake",
        trials=1,
        proxy_epochs=1,
        proxy_subset=64,
        proxy_val=32,
        device="cpu",
        storage=f"sqlite:///{tmp_path}/c.db",
        study="c",
    )
    with monkeypatch.context() as patch:
        patch.setattr(context, "make_trainer", pressed_ctrl_c)
        with pytest.raises(KeyboardInterrupt, match="retries the interrupted trial first"):
            search.run()
    first, queued = optuna.load_study(study_name="c", storage=f"sqlite:///{tmp_path}/c.db").trials
    assert first.state == TrialState.FAIL and queued.state == TrialState.WAITING  # its retry
    assert TrialRecord(first).fail_reason == f"{INTERRUPTED['SIGINT']}; retried as trial 1"
    study = search.run()
    retry = study.trials[1]
    assert retry.state == TrialState.COMPLETE and TrialRecord(retry).retry_of == first.number
    assert retry.params == first.params


def test_a_study_of_the_users_own_is_not_taken_over(tmp_path: Path) -> None:
    """An Optuna study of the user's own whose directions happen to match a search's is
    refused with its trials untouched: ``trials`` would count them as trained, and a search
    would mix its trials with theirs."""
    storage = f"sqlite:///{tmp_path / 'mine.db'}"
    mine = optuna.create_study(
        study_name="mine", storage=storage, directions=["maximize", "minimize"]
    )
    mine.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=3)
    search = nas.Search(space=str(DEFAULT_SPACE), dataset="fake", trials=2, device="cpu",
                        storage=storage, study="mine")  # fmt: skip
    with pytest.raises(NasError) as refused:
        search.run()
    assert str(refused.value) == (
        "study 'mine' holds 3 trials that no nas search ran (your own Optuna study), and nas "
        "does not add its trials to them; choose another study"
    )
    again = optuna.load_study(study_name="mine", storage=storage)
    assert len(again.trials) == 3 and again.user_attrs == {}


def test_settings_of_the_wrong_kind_and_an_unknown_limit_are_one_sentence() -> None:
    with pytest.raises(NasError) as wrong:
        nas.Search(settings={"param_limit": "150k"})  # type: ignore[arg-type]
    assert str(wrong.value) == (
        "settings must be a nas.search.SearchSettings, not a dict; give settings by name "
        "instead: nas.Search(param_limit='150k', ...)"
    )
    with pytest.raises(NasError) as unknown:
        SearchSettings(limits={"param": 150_000})
    assert str(unknown.value) == (
        "limits: unknown metric 'param'; did you mean params? valid: params, flops, latency, memory"
    )


def test_workers_started_at_one_instant_on_one_machine_sample_differently(
    tiny_space: Path, tmp_path: Path
) -> None:
    """A cluster's array job starts the same command several times on one SQLite study:
    same --seed, no worker index, no trial yet. Each start takes its own number under the
    set-up lock, so their samplers differ (they drew the same start-up candidates, and
    trained duplicates); the first start of a study keeps the seed's own sequence."""
    from nas.search.api import source_of
    from nas.search.study import open_search

    given = {
        "space": str(tiny_space), "dataset": "fake", "sampler": "random", "device": "cpu",
        "enqueue_presets": False, "storage": f"sqlite:///{tmp_path / 's.db'}", "study": "s",
    }  # fmt: skip
    first, second = (open_search(source_of(given=given), say=lambda text: None) for _ in "12")
    assert (first.start_number, second.start_number) == (0, 1)
    draws = [o.study.ask().suggest_float("x", 0, 1) for o in (first, second)]
    assert draws[0] != draws[1]
    alone = open_search(
        source_of(given={**given, "storage": f"sqlite:///{tmp_path / 'o.db'}"}),
        say=lambda text: None,
    )
    assert alone.study.ask().suggest_float("x", 0, 1) == draws[0]  # as the first start


def test_a_later_worker_s_trials_hold_for_the_workers_already_running(
    tiny_space: Path, tmp_path: Path
) -> None:
    """Worker 1 starts with --trials 6; worker 2 joins with --trials 3 and records it. The
    study's slots count what is recorded now, so worker 1 stops at 3 (it trained 6 and the
    study overshot the --trials its record showed)."""
    import torch

    from nas.search.api import source_of
    from nas.search.events import SilentMonitor
    from nas.search.loop import run_opened
    from nas.search.study import open_search

    given = {
        "space": str(tiny_space), "dataset": "fake", "sampler": "random", "device": "cpu",
        "proxy_epochs": 1, "proxy_subset": 64, "proxy_val": 32, "early_stopping": "off",
        "enqueue_presets": False, "storage": f"sqlite:///{tmp_path / 's.db'}", "study": "s",
    }  # fmt: skip
    said: list[str] = []
    first = open_search(source_of(given={**given, "trials": 6}), say=said.append)
    open_search(source_of(given={**given, "trials": 3}), say=said.append)
    assert "trials: 6 -> 3, recorded for later runs" in said
    outcome = run_opened(first, SilentMonitor(), torch.device("cpu"), said.append)
    assert outcome.stats.trained == 3 and outcome.stop_reason == "the study has 3 trained trials"


def test_run_raises_when_a_worker_refused_and_returns_a_search_that_gave_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``workers=2`` whose processes each refused (exit 2) is an error in Python as on the
    command line; a search that gave up (exit 1) returns its study, which holds why."""
    from nas.search import SearchSettings
    from nas.search.loop import SearchOutcome
    from nas.study.stats import study_stats

    study = optuna.create_study(study_name="w")
    for code, reason in ((2, "2 workers finished with exit codes [2, 2]"), (1, "gave up")):
        outcome = SearchOutcome(
            study, SearchSettings(), None, study_stats(study), 0.0, reason, exit_code=code
        )
        monkeypatch.setattr(nas.Search, "_outcome", lambda *a, outcome=outcome: outcome)
        if code == 2:
            with pytest.raises(NasError, match=r"exit codes \[2, 2\] \(their messages are above"):
                nas.Search(dataset="fake").run()
        else:
            assert nas.Search(dataset="fake").run() is study


def test_seeds_earlier_versions_ran_with_are_still_taken() -> None:
    """A seed is pinned: one an earlier version ran with (-1, 3e9, 1e11) must resume, while
    one that fails every trial (above 64 bits once scaled for the weights) is refused."""
    for seed in (-1, 3_000_000_000, 100_000_000_000, 90_000_000_000_000):
        assert SearchSettings(seed=seed).seed == seed
    with pytest.raises(NasError, match="seed must be between -90,000,000,000,000 and 90,000"):
        SearchSettings(seed=10**20)
