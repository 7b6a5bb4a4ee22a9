"""Figures that read at a glance: tick labels that differ, labelled size ticks, the limits
drawn, a notice on fake data, the start-up phase shaded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from nas.report import FIGURES, write_report
from nas.report.figures import (
    ACCURACY_TICK_FORMATS,
    accuracy_axis,
    accuracy_tick_format,
    padded_range,
    pareto_figure,
    plain_title,
    size_axis,
    size_label,
    size_ticks,
    wrap_title,
)
from tests.report.test_report import TRIALS, make_study

#: Every tick step plotly.js may pick on an accuracy axis (1, 2, 5 times a power of ten).
STEPS = [f * 10.0**k for k in range(-6, 0) for f in (1, 2, 5)]


def _labels(start: float, dtick: float, fmt: str, n: int = 6) -> list[str]:
    """What d3-format ``fmt`` (".N%") writes for ``n`` ticks ``dtick`` apart from ``start``."""
    decimals = int(fmt[1:-1])
    return [f"{100 * (start + i * dtick):.{decimals}f}%" for i in range(n)]


@pytest.mark.parametrize("dtick", STEPS)
@pytest.mark.parametrize("start", [0.0, 0.08, 0.9137])
def test_accuracy_ticks_never_repeat_a_label(dtick: float, start: float) -> None:
    tick0 = math.floor(start / dtick) * dtick  # plotly puts ticks on multiples of dtick
    labels = _labels(tick0, dtick, accuracy_tick_format(dtick))
    assert len(set(labels)) == len(labels), labels


def test_accuracy_ticks_use_no_more_decimals_than_needed() -> None:
    assert accuracy_tick_format(0.05) == ".0%"  # 0%, 5%, 10%
    assert accuracy_tick_format(0.01) == ".0%"
    assert accuracy_tick_format(0.002) == ".1%"  # 8.0%, 8.2%, 8.4%: not 8%, 8%, 8%
    assert accuracy_tick_format(0.001) == ".1%"
    assert accuracy_tick_format(0.0005) == ".2%"
    assert accuracy_tick_format(0.00001) == ".3%"
    assert accuracy_tick_format(0.000001) == ".4%"


def test_accuracy_axis_carries_the_stops_plotly_reads() -> None:
    axis = accuracy_axis()
    stops = [(s["dtickrange"], s["value"]) for s in axis["tickformatstops"]]
    assert stops == [([low, high], fmt) for low, high, fmt in ACCURACY_TICK_FORMATS]


@pytest.mark.parametrize(
    ("name", "axis"),
    [
        ("pareto-params", "yaxis"),
        ("pareto-flops", "yaxis"),
        ("history", "yaxis"),
        ("accuracy-by-attention", "yaxis"),
        ("accuracy-by-placement", "yaxis"),
        ("proxy-vs-full", "xaxis"),
        ("proxy-vs-full", "yaxis"),
        ("learning-curves", "yaxis"),
    ],
)
def test_every_accuracy_axis_fits_its_ticks(tmp_path: Path, name: str, axis: str) -> None:
    layout = FIGURES[name](make_study(tmp_path)).to_plotly_json()["layout"]
    assert layout[axis]["tickformatstops"] == accuracy_axis()["tickformatstops"]


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (500, "500"),
        (1_000, "1k"),
        (20_000, "20k"),
        (200_000, "200k"),
        (270_000, "270k"),
        (1_500_000, "1.5M"),
        (5e6, "5M"),
        (2e9, "2G"),
    ],
)
def test_size_labels(value: float, label: str) -> None:
    assert size_label(value) == label


def test_size_ticks_are_1_2_5_and_labelled() -> None:
    assert size_ticks(15_000, 400_000) == [20_000, 50_000, 100_000, 200_000]
    axis = size_axis([20_000, 300_000])
    assert axis["type"] == "log" and axis["tickmode"] == "array"
    assert axis["ticktext"] == ["20k", "50k", "100k", "200k"]
    low, high = axis["range"]  # padded, in decades
    assert low < math.log10(20_000) and high > math.log10(300_000)


def test_size_ticks_of_a_narrow_range_still_label_it() -> None:
    ticks = size_ticks(250_000, 310_000)
    assert len(ticks) >= 3 and all(250_000 <= t <= 310_000 for t in ticks)
    assert [size_label(t) for t in ticks] == ["260k", "280k", "300k"]


def test_size_ticks_over_many_decades_keep_to_powers_of_ten() -> None:
    ticks = size_ticks(1_000, 10**9)
    assert ticks == [10.0**k for k in range(3, 10)]


def _with_settings(study: optuna.Study, **settings: Any) -> optuna.Study:
    study.set_user_attr("nas_settings", settings)
    return study


def test_pareto_figures_draw_the_limits(tmp_path: Path) -> None:
    study = _with_settings(make_study(tmp_path), param_limit=5_000_000, flops_limit=500_000_000)
    fig = FIGURES["pareto-params"](study)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert {(s.x0, s.x1) for s in lines} == {(5_000_000, 5_000_000)}
    assert len(lines) == 2  # over the plot and over the strip of rejected candidates
    (label,) = [a for a in fig.layout.annotations if a.text.startswith("limit")]
    assert label.text == "limit 5M params" and label.x == pytest.approx(math.log10(5e6))
    assert fig.layout.xaxis2.tickmode == "array" and "5M" in fig.layout.xaxis2.ticktext
    flops = FIGURES["pareto-flops"](study)
    assert [a.text for a in flops.layout.annotations] == ["limit 500M FLOPs"]


def test_pareto_figure_without_a_limit_draws_none(tmp_path: Path) -> None:
    fig = FIGURES["pareto-flops"](_with_settings(make_study(tmp_path), param_limit=5_000_000))
    assert not fig.layout.shapes
    (tmp_path / "x").mkdir()
    assert not pareto_figure(make_study(tmp_path / "x").trials).layout.shapes


def test_padded_range() -> None:
    assert padded_range([0.5, 0.7]) == pytest.approx([0.476, 0.724])
    assert padded_range([0.5]) == pytest.approx([0.49, 0.51])


def test_wrapped_titles_fit_their_width() -> None:
    title = wrap_title("Proxy vs full accuracy", "a <b> " + "word " * 30, width=40)
    first, rest = title.split("<br>", 1)
    assert first == "Proxy vs full accuracy" and "&lt;b&gt;" in rest
    assert plain_title_of(title).startswith("Proxy vs full accuracy a <b> word")


def plain_title_of(text: str) -> str:
    import plotly.graph_objects as go

    return plain_title(go.Figure(layout={"title": {"text": text}}), detail=True)


def test_report_says_when_a_study_ran_on_fake_data(tmp_path: Path) -> None:
    fake = _with_settings(make_study(tmp_path, rows=TRIALS[:3]), dataset="fake")
    text = write_report(fake, tmp_path / "fake.html").read_text(encoding="utf-8")
    assert '<p class="notice fake">Fake data: this study was searched on --dataset fake' in text
    (tmp_path / "r").mkdir()
    real = _with_settings(make_study(tmp_path / "r", rows=TRIALS[:3]), dataset="cifar10")
    text = write_report(real, tmp_path / "real.html").read_text(encoding="utf-8")
    assert "notice fake" not in text.split("</style>")[1]


def test_report_header_compares_guided_and_startup_trials(tmp_path: Path) -> None:
    text = write_report(make_study(tmp_path), tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<dt>Guided vs random start-up</dt><dd>sampler tpe: too few trials to compare" in text
    # the figure list names each figure by its title, without the markup of wrapped titles
    assert '<a href="#nas-proxy-vs-full">Proxy vs full accuracy</a>' in text


def test_the_latency_figure_shows_the_values_of_one_context() -> None:
    """After --remeasure (batch 1 -> 4) the figure shows what the front compares: batch-1
    values sat beside batch-4 ones on one axis, one of them left of the front for no
    visible reason. A candidate trained in both is drawn once, by its batch-4 run."""
    from optuna.trial import FrozenTrial

    from nas.presets import preset

    def trial(name: str, accuracy: float, latency: float, context: str) -> FrozenTrial:
        attrs = {"arch": preset(name).to_dict(), "accuracy": accuracy, "params": 1000,
                 "latency": latency, "measured_in": context}  # fmt: skip
        return optuna.trial.create_trial(values=[accuracy, latency], user_attrs=attrs)

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials([
        trial("resnet20", 0.5, 0.9, "batch1"),
        trial("resnet20-selfattn", 0.45, 1.0, "batch1"),
        trial("resnet20-cbam", 0.4, 4.6, "batch4"),
        trial("resnet20", 0.6, 4.0, "batch4"),
    ])  # fmt: skip
    fig = pareto_figure(study.get_trials(), "latency")
    drawn = {t.name: sorted(t.customdata) for t in fig.data}
    assert drawn["trained"] == [2, 3] and drawn["Pareto front"] == [3]
    title = fig.layout.xaxis.title.text
    assert title.endswith("(2 trials measured in an earlier hardware context not shown)")
