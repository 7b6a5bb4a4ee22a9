"""Objectives are data: adding one is one registry entry and one function.

The test registers a metric no module of ``nas`` knows (the widest stage of a candidate,
measured before training, with its own limit) and runs a fake-data search, a report and an
export that carry it: the limit rejects candidates with their reason and the sampler is told
(a constraint value), the trials' values hold it, the summary, report, dashboard name and
export show it, and ``--help`` offers its limit flag. Nothing else is changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from nas.config import ArchConfig
from nas.errors import NasError
from nas.objectives import METRICS, Limit, Metric, parse_objectives, register

WIDTH_LIMIT = 8


def widest(arch: ArchConfig) -> float:
    """The dummy objective: channels of the widest stage."""
    return float(max(s.width for s in arch.stages))


@pytest.fixture
def widest_stage() -> Iterator[Metric]:
    metric = register(
        Metric(
            "widest",
            field="widest",
            direction="minimize",
            label="channels",
            dashboard="widest_channels",
            limit=Limit("width_limit", "most channels of any stage", parse=float),
            measure="tests.test_objectives:widest",
        )
    )
    yield metric
    METRICS.remove("widest")


def test_a_registered_objective_is_searched_reported_and_exported(
    widest_stage: Metric, tiny_space: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import nas
    from nas.cli.search import print_summary
    from nas.export import export_document
    from nas.report import write_report
    from nas.study.record import TrialRecord

    outcome = nas.Search(
        space=str(tiny_space),
        dataset="fake",
        objectives="accuracy,widest",
        width_limit=str(WIDTH_LIMIT),  # parsed by the limit's own parser, like its flag
        trials=3,
        proxy_epochs=1,
        proxy_subset=64,
        proxy_val=32,
        proxy_batch_size=16,
        early_stopping="off",
        sampler="random",
        device="cpu",
        storage=f"sqlite:///{tmp_path}/w.db",
        study="widest",
    ).outcome()
    study = outcome.study
    assert study.metric_names == ["val_accuracy", "widest_channels"]
    records = [TrialRecord(t) for t in study.trials]
    rejected = [r for r in records if r.is_rejected]
    trained = [r for r in records if r.is_complete]
    assert len(trained) == 3 and rejected
    for r in rejected:  # the limit rejected them, with the reason, and the sampler is told
        assert r.rejected == f"{r.value('widest'):.0f} channels > limit {WIDTH_LIMIT}"
        assert r.trial.constraints["widest"] > 0
    for r in trained:  # its values: accuracy and the new objective, measured before training
        assert r.value("widest") == widest(ArchConfig.from_dict(r.arch or {})) <= WIDTH_LIMIT
        assert r.trial.values == [r.accuracy, r.value("widest")]
        assert r.trial.constraints["widest"] <= 0
    assert outcome.settings.limits == {"params": 5_000_000, "widest": WIDTH_LIMIT}

    print_summary(outcome, outcome.settings)
    assert "Pareto front (val accuracy vs channels)" in capsys.readouterr().out

    page = write_report(study, tmp_path / "report.html").read_text()
    assert 'id="nas-pareto-widest"' in page and "Pareto front: accuracy vs channels" in page
    assert f"limit {WIDTH_LIMIT} channels" in page  # the limit is drawn

    best = max(study.best_trials, key=lambda t: t.values[0])
    doc = export_document(study, best, "test", f"sqlite:///{tmp_path}/w.db")
    assert doc["meta"]["objectives"] == ["accuracy", "widest"]
    assert doc["meta"]["metrics"]["widest"]["value"] == TrialRecord(best).value("widest")
    assert doc["meta"]["limits"]["widest"] == WIDTH_LIMIT
    json.dumps(doc)  # the export stays plain JSON


def test_a_registered_objective_has_its_flag_and_study_file_key(
    widest_stage: Metric, tmp_path: Path
) -> None:
    from nas.cli.main import build_parser
    from nas.cli.search import source_from_args

    parser = build_parser()
    search = parser._subparsers._group_actions[0].choices["search"]  # type: ignore[union-attr]
    help_text = search.format_help()
    assert "--width-limit LIMIT" in help_text and "widest" in help_text
    study_file = tmp_path / "s.toml"
    study_file.write_text('[search]\nobjectives = "accuracy,widest"\nwidth_limit = 12\n')
    args = parser.parse_args(["search", str(study_file), "--width-limit", "16"])
    settings = source_from_args(args).resolve(None, "new").settings
    assert settings.objectives == ("accuracy", "widest")
    assert settings.limit("widest") == 16.0  # the flag wins over the study file


def test_objectives_are_checked_against_the_registry() -> None:
    assert parse_objectives("accuracy,flops") == ("accuracy", "flops")
    assert parse_objectives(["accuracy", "params", "flops"]) == ("accuracy", "params", "flops")
    with pytest.raises(NasError, match=r"unknown objective 'latncy'.*did you mean latency\?"):
        parse_objectives("accuracy,latncy")
    with pytest.raises(NasError, match=r"unknown objective 'speed'.*valid after accuracy: params"):
        parse_objectives("accuracy,speed")
    with pytest.raises(NasError, match="must start with accuracy"):
        parse_objectives("params")
    with pytest.raises(NasError, match="name one twice"):
        parse_objectives("accuracy,params,params")


def test_a_metric_or_limit_registered_twice_is_refused(widest_stage: Metric) -> None:
    with pytest.raises(KeyError, match="already registered"):
        register(dataclasses.replace(widest_stage, label="pixels"))
    assert register(widest_stage) is widest_stage  # the same one again (a plugin's own call)
    clash = Metric("other", "other", "minimize", "x", "x", limit=Limit("width_limit", "h"))
    with pytest.raises(KeyError, match="limit setting 'width_limit'"):
        register(clash)


def test_a_study_made_without_nas_is_read_from_its_metric_names() -> None:
    from nas.study.record import StudyRecord

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    assert StudyRecord(study).objectives == ("accuracy", "flops")


PLUGIN = """
from nas.objectives import Limit, Metric

def widest(arch):
    return float(max(s.width for s in arch.stages))

WIDEST = Metric(
    "widest", field="widest", direction="minimize", label="channels",
    dashboard="widest_channels", limit=Limit("width_limit", "most channels", parse=float),
    measure="mymetrics:widest",
)
"""


def installed_plugin(site: Path) -> dict[str, str]:
    """A package that adds the metric ``widest`` as an entry point of ``nas.objectives``, as
    ``pip install`` lays one out; the environment that puts it on the path."""
    site.mkdir()
    (site / "mymetrics.py").write_text(PLUGIN)
    info = site / "mymetrics-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mymetrics\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nas.objectives]\nwidest = mymetrics:WIDEST\n")
    return {"PYTHONPATH": str(site)}


def test_an_installed_metric_is_known_to_every_command_and_a_missing_one_is_refused(
    tiny_space: Path, tmp_path: Path
) -> None:
    """A metric registered in a script is known to that process only: an installed entry
    point makes it known to ``nas search``, ``nas export`` and ``nas report`` alike; where it
    is not installed, a study that optimises it is refused in one line, never read as a study
    of accuracy against parameters (whose best trial and front differ)."""
    from tests.conftest import run_nas

    plugin = installed_plugin(tmp_path / "site")
    db = f"sqlite:///{tmp_path}/w.db"
    where = ("--storage", db, "--study", "w")
    search = run_nas(
        "search", "--space", str(tiny_space), "--dataset", "fake", "--objectives",
        "accuracy,widest", "--width-limit", str(WIDTH_LIMIT), "--trials", "2",
        "--proxy-epochs", "1", "--proxy-subset", "64", "--proxy-val", "32", "--sampler",
        "random", "--device", "cpu", "--quiet", *where, env=plugin,
    )  # fmt: skip
    assert search.returncode == 0, search.stderr
    assert f"channels > limit {WIDTH_LIMIT}" in search.stderr  # its limit rejected some
    out = tmp_path / "best.json"
    export = run_nas("export", *where, "--best", "--out", str(out), env=plugin)
    assert export.returncode == 0, export.stderr
    meta = json.loads(out.read_text())["meta"]
    assert meta["objectives"] == ["accuracy", "widest"]
    assert meta["limits"]["widest"] == WIDTH_LIMIT

    refused = (
        "nas: error: study 'w' optimises 'widest', which no metric registered here measures: "
        "register its Metric in this process (nas.objectives.register) or install the package "
        "that adds it as an entry point of 'nas.objectives'"
    )
    for args in (("export", *where, "--best", "--out", str(tmp_path / "b.json")),
                 ("report", *where, "--out", str(tmp_path / "r.html")),
                 ("search", *where, "--trials", "3", "--device", "cpu")):  # fmt: skip
        without = run_nas(*args)
        assert without.returncode == 2 and without.stderr.strip().splitlines() == [refused]
    assert not (tmp_path / "b.json").exists()


def test_a_plugin_that_fails_to_load_is_named_and_the_rest_runs(tmp_path: Path) -> None:
    from tests.conftest import run_nas

    site = tmp_path / "site"
    env = installed_plugin(site)
    (site / "mymetrics.py").write_text("raise ImportError('no module named torch_extras')\n")
    out = run_nas("presets", env=env)
    assert out.returncode == 0
    assert out.stderr.splitlines() == [
        "warning: objective plugin 'widest' (mymetrics:WIDEST) is not loaded: no module named "
        "torch_extras"
    ]
