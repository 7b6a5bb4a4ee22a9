"""The report and ``nas dashboard`` in a real browser: headless Chromium, driven over the
DevTools protocol (:mod:`tests.report.chromium`), renders every figure, logs no JavaScript
error, and lays the dashboard's pages out within a 1280-pixel window.

Screenshots are kept as test artefacts in the folder named by ``NAS_TEST_ARTIFACTS``
(default: the test's temporary folder). Skipped where no Chromium is installed
(``.ci/install-chromium`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from nas.report import build_figures, graph_id, write_report
from nas.report.figures import plain_title
from nas.study.stats import study_stats
from tests.report.chromium import Chromium, Page, find_chromium
from tests.report.test_report import MORE_TRAINED, TRIALS, make_study
from tests.test_dashboard import serve_dashboard

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_chromium() is None,
        reason="needs Chromium (chromium, chromium-browser or google-chrome on PATH); "
        "install it with .ci/install-chromium",
    ),
]

#: Where ``nas dashboard`` listens (the port follows).
#: The browser window: a common laptop width, at which nothing may overflow sideways.
WINDOW = (1280, 900)

#: JavaScript: for every plotly figure on the page, its id, whether plotly drew it (an SVG
#: with a plot area), its title as drawn, and its tick labels per axis.
PLOTS = """
[...document.querySelectorAll('.js-plotly-plot')].map(el => ({
  id: el.id,
  drawn: !!(el._fullLayout && el.querySelector('svg.main-svg .cartesianlayer')
            && el.getBoundingClientRect().height > 100),
  title: (el.querySelector('.gtitle') || {}).textContent || '',
  ticks: Object.fromEntries(['xtick', 'ytick', 'x2tick', 'y2tick'].map(k =>
    [k, [...el.querySelectorAll('g.' + k + ' text')].map(t => t.textContent)])),
}))
"""


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where the screenshots go: ``$NAS_TEST_ARTIFACTS`` or the test's temporary folder."""
    folder = Path(os.environ.get("NAS_TEST_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    with Chromium.start(tmp_path / "chromium-profile", size=WINDOW) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, optuna.Study]:
    """A small study in SQLite with every kind of trial (trained, on the front, stopped
    early, rejected, failed, fully trained winners) and the settings a search records."""
    folder = tmp_path_factory.mktemp("browser")
    study = make_study(folder, name="browser", rows=TRIALS + MORE_TRAINED)
    study.set_user_attr(
        "nas_settings",
        {
            "dataset": "cifar10",
            "sampler": "tpe",
            "param_limit": 5_000_000,
            "flops_limit": 600_000_000,
            "early_stopping": "sha",
            "eta": 2,
            "min_epochs": 1,
            "proxy_epochs": 3,
        },
    )
    return folder / "r.db", study


def _plots(page: Page, ids: set[str], timeout: float = 45) -> list[dict[str, object]]:
    """The figures of the page once every one of ``ids`` is drawn."""
    want = json.dumps(sorted(ids))
    page.wait_for(
        f"(() => {{ const plots = {PLOTS}; const drawn = new Set(plots.filter(p => p.drawn)"
        f".map(p => p.id)); return {want}.every(id => drawn.has(id)); }})()",
        timeout=timeout,
    )
    page.browser.pump(0.3)
    result: list[dict[str, object]] = page.evaluate(PLOTS)
    return result


def _check_ticks(plots: list[dict[str, object]]) -> None:
    """No axis of any figure repeats a tick label (``8% 8% 8%``)."""
    for plot in plots:
        ticks = plot["ticks"]
        assert isinstance(ticks, dict)
        for axis, labels in ticks.items():
            shown = [label for label in labels if label]
            assert len(set(shown)) == len(shown), (plot["id"], axis, shown)


def test_report_renders_every_figure_without_errors(
    searched: tuple[Path, optuna.Study], browser: Chromium, artifacts: Path, tmp_path: Path
) -> None:
    _, study = searched
    figures = build_figures(study)
    path = write_report(study, tmp_path / "report.html")
    page = browser.new_page()
    page.navigate(path.as_uri())
    plots = _plots(page, {graph_id(name) for name, _ in figures})
    page.screenshot(artifacts / "report.png")
    drawn = [p for p in plots if p["drawn"]]
    assert len(plots) == len(drawn) == len(figures)
    titles = {p["id"]: p["title"] for p in plots}
    for name, fig in figures:
        assert str(titles[graph_id(name)]).startswith(plain_title(fig)), name
    _check_ticks(plots)
    browser.pump(0.5)
    assert page.errors() == [], page.console()
    assert page.evaluate("document.documentElement.scrollWidth") <= WINDOW[0]


def _serve(db: Path) -> tuple[subprocess.Popen[str], int]:
    """Start ``nas dashboard`` on ``db`` and wait until it answers."""
    return serve_dashboard(db, timeout=60)


def test_dashboard_renders_the_study_and_its_figures_without_errors(
    searched: tuple[Path, optuna.Study], browser: Chromium, artifacts: Path
) -> None:
    db, study = searched
    proc, port = _serve(db)
    base = f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}"
    try:
        # the study's page: optuna-dashboard's own plots and the figures nas stored
        page = browser.new_page()
        page.navigate(base)
        page.wait_for("document.body && document.body.innerText.includes('browser (id=')")
        # optuna-dashboard draws a stored figure in an element with this id
        ids = {f"user-defined-plot:{graph_id(name)}" for name, _ in build_figures(study)}
        plots = _plots(page, ids)
        page.screenshot(artifacts / "dashboard-study.png")
        ours = [p for p in plots if p["id"] in ids]
        assert len(ours) == len(ids) and all(p["drawn"] for p in ours)
        assert len(plots) > len(ours)  # the dashboard's own plots rendered too
        assert any("Pareto front: accuracy vs params" in str(p["title"]) for p in ours)
        _check_ticks(ours)
        assert page.errors() == [], page.console()

        # a winner's note: its config in a code block, nothing wider than the window
        winner = study_stats(study).pareto[0].number
        trial = browser.new_page()
        trial.navigate(f"{base}/trials?numbers={winner}")
        trial.wait_for(
            f"!!(document.body && document.body.innerText.includes('Trial {winner}: ') "
            "&& document.querySelector('pre'))"
        )
        browser.pump(0.5)
        trial.screenshot(artifacts / "dashboard-trial.png", full_page=False)
        assert trial.evaluate("document.documentElement.scrollWidth") <= WINDOW[0]
        assert trial.errors() == [], trial.console()

        # the study's note: how the guided trials compare with the random start-up ones
        note = browser.new_page()
        note.navigate(f"{base}/note")
        note.wait_for(
            "document.body && document.body.innerText.includes('Guided search vs its random')"
        )
        note.screenshot(artifacts / "dashboard-note.png", full_page=False)
        assert note.errors() == [], note.console()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
