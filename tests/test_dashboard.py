"""``nas dashboard``: a real optuna-dashboard process on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

import nas
from nas.config import ATTENTION_KNOBS, ArchConfig
from nas.dashboard import (
    MAX_SHOWN_CHARS,
    NOTE_WIDTH,
    install_dashboard_view,
    pretty_json,
    shown_attr,
    shown_config,
    study_note,
    winner_note,
)
from nas.presets import preset
from nas.report.figures import FIGURE_ORDER, FIGURES, graph_id
from nas.study.record import SEARCH_SETTINGS, StudyRecord
from tests.conftest import ROOT, arch_for, run_nas
from tests.report.test_report import make_study


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_dashboard(
    db: Path, *extra: str, timeout: float = 90
) -> tuple[subprocess.Popen[str], int]:
    """Start a real ``nas dashboard`` on ``db`` on a free port and wait until its API answers
    (fails the test, with the process's stderr, when it does not)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", "dashboard", "--storage", f"sqlite:///{db}",
         "--host", "127.0.0.1", "--port", str(port), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.3)
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"nas dashboard did not answer: {err[-2000:]}")


@pytest.mark.slow
def test_dashboard_serves_the_study_with_figures_and_notes(
    front_study: tuple[Path, optuna.Study],
) -> None:
    db, _ = front_study
    proc, port = serve_dashboard(db)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as r:
            body = json.loads(r.read())
        names = [s["study_name"] for s in body["study_summaries"]]
        assert names == ["w"]
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}/dashboard/" in stdout and "dashboard stopped" in stdout
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    study_id = storage.get_study_id_from_name("w")
    attrs = storage.get_study_system_attrs(study_id)
    from optuna_dashboard._custom_plot_data import list_graph_object_ids

    shown = {name for name in FIGURES if name not in ("pareto-latency", "pareto-memory")}
    assert set(list_graph_object_ids(attrs)) == {f"nas-{name}" for name in shown}
    notes = [k for k in attrs if k.endswith(":note_ver") and k != "dashboard:note_ver"]
    assert len(notes) == 3  # the three Pareto-optimal trials


@pytest.mark.parametrize("annotate", [True, False], ids=["annotate", "no-annotate"])
def test_dashboard_port_in_use_is_one_line(
    front_study: tuple[Path, optuna.Study], annotate: bool
) -> None:
    """Refused before any figure is stored: the port is taken first."""
    db, _ = front_study
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_nas(
            "dashboard",
            "--storage",
            f"sqlite:///{db}",
            "--port",
            str(port),
            *([] if annotate else ["--no-annotate"]),
        )
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"nas: error: port {port} on 127.0.0.1 is in use; pass another --port"
    ]
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name("w"))
    from optuna_dashboard._custom_plot_data import list_graph_object_ids

    assert list_graph_object_ids(attrs) == []  # no figure was stored


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_dashboard_bad_port_is_one_line_before_anything_is_written(
    front_study: tuple[Path, optuna.Study], port: str
) -> None:
    db, _ = front_study
    before = db.read_bytes()
    res = run_nas("dashboard", "--storage", f"sqlite:///{db}", "--port", port)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: argument --port: ")
    assert db.read_bytes() == before  # no figure, no note written


def test_notes_edited_in_the_dashboard_are_kept(front_study: tuple[Path, optuna.Study]) -> None:
    from optuna_dashboard import get_note, save_note

    from nas.dashboard import annotate

    db, _ = front_study
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{db}")
    _, noted, kept = annotate(study)
    assert len(noted) == 3 and kept == 0
    winner = study.trials[noted[0]]
    handle = optuna.trial.Trial(study, winner._trial_id)
    generated = get_note(handle)
    assert generated.startswith(f"## Trial {winner.number}")
    save_note(handle, "my own notes on this one")  # what a person types in the dashboard
    _, _, kept = annotate(study)  # the dashboard restarted
    assert kept == 1 and get_note(handle) == "my own notes on this one"
    other = optuna.trial.Trial(study, study.trials[noted[1]]._trial_id)
    assert get_note(other).startswith(f"## Trial {noted[1]}")  # untouched ones stay generated


def test_report_to_an_unwritable_place_fails_first(
    front_study: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    db, _ = front_study
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = run_nas(
        "report", "--storage", f"sqlite:///{db}", "--study", "w",
        "--out", str(blocker / "sub" / "report.html"),
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"nas: error: cannot write {blocker / 'sub' / 'report.html'}: {blocker} is a file, "
        "not a folder"
    ]


@pytest.mark.parametrize("command", ["report", "export", "train-winners", "dashboard"])
def test_read_only_commands_do_not_create_a_database(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "none.db"
    args = [command, "--storage", f"sqlite:///{missing}"]
    if command != "dashboard":
        args += ["--study", "s"]
    if command == "export":
        args += ["--best", "--out", str(tmp_path / "best.json")]
    if command == "report":
        args += ["--out", str(tmp_path / "report.html")]
    if command == "train-winners":
        args += ["--pareto", "--epochs", "1"]
    res = run_nas(*args)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"nas: error: the study database {missing} does not exist"
    ]
    assert not missing.parent.exists()


# --------------------------------------------------------------------------- readable views
def _api(storage: str, path: str) -> Any:
    """GET ``path`` from optuna-dashboard's WSGI app on ``storage``, as ``nas dashboard``
    serves it (this module imports nas.dashboard, which installs its view)."""
    from optuna_dashboard import wsgi

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ |= {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    status: list[str] = []
    body = b"".join(wsgi(storage)(environ, lambda s, h, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)


def _code_block(note: str) -> str:
    start = note.index("```json\n") + len("```json\n")
    return note[start : note.index("\n```", start)]


def test_winner_note_shows_the_config_as_indented_json(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    trial = study.trials[5]  # a winner: enhanced-efficient-resnet
    arch = trial.user_attrs["arch"]
    note = winner_note(trial)
    assert note.startswith(f"## Trial 5: {ArchConfig.from_dict(arch).summary()}\n")
    block = _code_block(note)
    assert ArchConfig.from_dict(json.loads(block)) == ArchConfig.from_dict(arch)
    lines = block.splitlines()
    assert len(lines) > 10 and max(map(len, lines)) <= NOTE_WIDTH <= 56  # a narrow pane
    # a stage on one line, not one line per number as json.dumps(indent=2) would put it
    assert '    {"width": 62, "blocks": 2, "stride": 1},' in lines
    assert "`nas export --trial 5`" in note
    assert "* after 200 full epochs: validation accuracy 0.9400" in note


@pytest.mark.parametrize("kind", list(ATTENTION_KNOBS))
def test_winner_note_lists_only_the_knobs_of_its_attention_type(kind: str) -> None:
    arch = arch_for(kind)
    trial = optuna.trial.create_trial(
        values=[0.5, 1000.0], user_attrs={"arch": arch, "accuracy": 0.5, "params": 1000}
    )
    shown = json.loads(_code_block(winner_note(trial)))
    expected = {"type"} if kind == "none" else {"type", "placement", "join", *ATTENTION_KNOBS[kind]}
    assert set(shown["attention"]) == expected
    assert ArchConfig.from_dict(shown) == ArchConfig.from_dict(arch)  # nothing lost


def test_winner_note_counts_one_epoch_as_one() -> None:
    attrs = {"arch": arch_for("spatial"), "accuracy": 0.5, "params": 1000, "flops": 2000}
    attrs |= {"full_epochs": 1, "full_val_accuracy": 0.6, "full_accuracy": 0.61}
    note = winner_note(optuna.trial.create_trial(values=[0.5, 1000.0], user_attrs=attrs))
    assert "* after 1 full epoch: validation accuracy 0.6000" in note
    assert "epochs" not in note


def test_study_note_compares_guided_and_startup_trials(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    note = study_note(study)
    assert "## Guided search vs its random start-up" in note
    assert "too few trials to compare" in note
    assert "Fake data" not in note
    study.set_user_attr("nas_settings", {"dataset": "fake"})
    assert study_note(study).startswith("**Fake data: this study was searched on --dataset fake")


@pytest.mark.parametrize(
    "value",
    [
        preset("enhanced-efficient-resnet").to_dict(),
        {"a": [1, 2, {"b": "x" * 100}], "c": {}, "d": []},
        [[1, 2], [3, [4, 5, 6]]] * 10,
        "a string longer than the note is wide " * 3,
        1.5,
        None,
    ],
)
def test_pretty_json_gives_the_value_back(value: Any) -> None:
    text = pretty_json(value)
    assert json.loads(text) == value
    too_wide = [line for line in text.splitlines() if len(line) > NOTE_WIDTH]
    # only a string too long for a line makes one (JSON has no way to break it)
    assert all("x" * 100 in line or isinstance(value, str) for line in too_wide)


def test_long_user_attributes_are_shortened_for_display() -> None:
    assert shown_attr("preset", "resnet20") == "resnet20"
    arch = preset("enhanced-efficient-resnet")
    shown = shown_attr("arch", json.dumps(arch.to_dict()))
    assert shown == arch.summary() + " (summary)" and len(shown) <= MAX_SHOWN_CHARS
    # a value is drawn on one line that does not wrap: longer ones widen the trial's pane
    assert MAX_SHOWN_CHARS <= 80
    curve = json.dumps([0.12345] * 300)
    shown = shown_attr("curve", curve)
    assert shown.startswith("[0.12345, ") and f"({len(curve):,} characters" in shown
    assert len(shown) <= MAX_SHOWN_CHARS
    cut = json.dumps(arch.to_dict())[:100] + "x" * 100  # optuna-dashboard cuts at 1,024
    assert shown_attr("arch", cut).startswith(cut[:60])


def test_dashboard_shows_the_arch_short_and_the_figures_in_order(tmp_path: Path) -> None:
    from optuna_dashboard import save_plotly_graph_object

    from nas.dashboard import annotate

    study = make_study(tmp_path)
    storage = f"sqlite:///{tmp_path}/r.db"
    annotate(study)
    install_dashboard_view()  # as nas dashboard does before it serves
    save_plotly_graph_object(study, FIGURES["history"](study), graph_object_id="aaa-mine")
    detail = _api(storage, f"/api/studies/{study._study_id}")

    ids = [g["id"] for g in detail["plotly_graph_objects"]]
    assert ids == [graph_id(name) for name in FIGURE_ORDER] + ["aaa-mine"]

    trial = next(t for t in detail["trials"] if t["number"] == 5)
    attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
    arch = preset("enhanced-efficient-resnet")
    assert attrs["arch"].startswith(arch.summary())  # not 500 characters of JSON on one line
    assert all(len(v) <= MAX_SHOWN_CHARS for v in attrs.values())
    assert attrs["preset"] == "enhanced-efficient-resnet" and attrs["params"] == "4905487"
    assert json.loads(_code_block(trial["note"]["body"])) == shown_config(arch)

    stored = optuna.load_study(study_name=study.study_name, storage=storage).trials[5]
    assert stored.user_attrs["arch"] == arch.to_dict()  # the data is untouched


def test_dashboard_view_installs_once() -> None:
    from optuna_dashboard import _app, _serializer

    assert install_dashboard_view() and install_dashboard_view()
    for wrapped in (_serializer.serialize_attrs, _app.get_plotly_graph_objects):
        assert wrapped._nas_view
        assert not getattr(wrapped.__wrapped__, "_nas_view", False)


def _history_trials(db: Path) -> set[int]:
    """The trial numbers the stored ``nas-history`` figure of study ``w`` holds."""
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name("w"))
    figure = json.loads(get_plotly_graph_objects(attrs)["nas-history"])
    return {n for trace in figure["data"] for n in trace.get("customdata") or []}


@pytest.mark.slow
def test_dashboard_brings_figures_up_to_date_and_leaves_other_studies_alone(
    front_study: tuple[Path, optuna.Study],
) -> None:
    """A search going on beside the dashboard adds trials: the stored figures follow (they
    were written once, at start-up); a study nas did not make gets no nas figures."""
    from optuna.distributions import FloatDistribution

    from nas.counting import count

    db, study = front_study
    optuna.create_study(study_name="bare", storage=f"sqlite:///{db}")
    mine = optuna.create_study(study_name="mine", storage=f"sqlite:///{db}")
    mine.optimize(lambda t: -nas.suggest(t, "small_cifar", param_limit="1M").stages[0].width,
                  n_trials=2)  # fmt: skip
    odd = optuna.create_study(study_name="odd", storage=f"sqlite:///{db}",
                              directions=["maximize", "minimize"])  # fmt: skip
    StudyRecord(odd).record_settings(SEARCH_SETTINGS, {"objectives": ["accuracy", "mystery"]})
    proc, _ = serve_dashboard(db, "--refresh", "0.5")
    try:
        shown = _history_trials(db)
        assert 5 not in shown and {0, 1, 2, 3} <= shown
        arch = arch_for("none")
        params = count(ArchConfig.from_dict(arch)).params
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.9, float(params)],
                params={"x": 0.25},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"arch": arch, "params": params, "accuracy": 0.9, "curve": [0.9]},
            )
        )
        deadline = time.monotonic() + 60
        while 5 not in _history_trials(db) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert 5 in _history_trials(db)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "study bare: not made by nas, left as it is" in err
    assert "study mine: scored by your own objective (nas.suggest), which nas does not rank" in err
    assert "study 'odd' optimises 'mystery', which no metric registered here measures" in err
    assert "study w: brought up to date: 9 figures" in err, err
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    for name in ("bare", "mine", "odd"):  # nothing written to the other studies
        attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(name))
        assert not any("nas-" in key for key in attrs)


@pytest.mark.slow
def test_importance_warnings_stay_out_of_the_dashboard_terminal(tmp_path: Path) -> None:
    """optuna-dashboard's importance (PED-ANOVA) warns on each page view of a study with
    sparse parameters; the user would see Optuna's file paths scroll by."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    db = tmp_path / "i.db"
    study = optuna.create_study(study_name="i", storage=f"sqlite:///{db}")
    width, kernel = FloatDistribution(0, 1), CategoricalDistribution([3, 5, 7])
    study.add_trial(  # a kernel size only one trial drew, as a space's conditional knob
        optuna.trial.create_trial(
            value=0.1, params={"w": 0.2, "k": 7}, distributions={"w": width, "k": kernel}
        )
    )
    study.add_trial(
        optuna.trial.create_trial(value=0.2, params={"w": 0.4}, distributions={"w": width})
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", "dashboard", "--storage", f"sqlite:///{db}",
         "--port", str(port), "--no-annotate"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": ""},  # the warnings a user sees
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/studies/{study._study_id}/param_importances"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    assert "param_importances" in json.loads(r.read())
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None
                time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Warning" not in err, err
