"""Latency and peak memory as objectives and hard limits (issue: hardware-aware search)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from nas.errors import NasError
from nas.hardware.cache import HardwareMeter, MeasurementStore, StudyMeasurements, arch_key
from nas.hardware.context import HardwareContext, check_same_hardware
from nas.hardware.measure import RUNS, estimate_forward_memory, measure
from nas.objectives import METRICS, parse_objectives
from nas.study.record import StudyRecord, TrialRecord
from nas.study.stats import is_rejected, study_stats
from nas.units import parse_bytes, parse_duration_ms
from tests.conftest import run_nas, small_config, tiny_search
from tests.hardware.stable_latency import install, stable_latency, subprocess_env


def test_limits_parse_with_their_units() -> None:
    assert parse_duration_ms("2ms") == 2.0
    assert parse_duration_ms("500us") == pytest.approx(0.5)
    assert parse_duration_ms("0.01s") == pytest.approx(10.0)
    assert parse_duration_ms(3) == 3.0
    assert parse_bytes("300MB") == 300e6
    assert parse_bytes("1GiB") == 2**30
    assert parse_bytes("300") == parse_bytes("300M") == 300e6  # bare: megabytes, as shown
    for bad in ("2 parsecs", "-1ms", "0ms", "fast"):
        with pytest.raises(NasError):
            parse_duration_ms(bad)
    with pytest.raises(NasError, match="300MB"):
        parse_bytes("300 furlongs")
    assert METRICS["memory"].limit is not None
    assert METRICS["memory"].limit.parse("300MB") == pytest.approx(300.0)  # the metric is in MB
    assert parse_objectives("accuracy,params,latency") == ("accuracy", "params", "latency")


def test_cpu_memory_estimate_matches_a_hand_computed_network() -> None:
    """Weights + input + the peak of what the operators return, by hand:
    conv 3->4 3x3 (112 params) and linear 256->10 (2,570) and conv 4->4 1x1 (20): 2,702 floats
    = 10,808 B; input 2x3x8x8 floats = 1,536 B; conv1's output (2,048 B) is alive while conv2
    writes its own (2,048 B): 4,096 B; the in-place ReLU and the flatten view allocate nothing,
    and the linear's 80 B come after conv1's output is freed."""
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 4, 1),
        nn.Flatten(),
        nn.Linear(256, 10),
    ).eval()
    x = torch.zeros(2, 3, 8, 8)
    assert estimate_forward_memory(net, x) == 10_808 + 1_536 + 4_096
    # not in place: the ReLU's output is a new 2,048 B while conv1's is still held
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    assert estimate_forward_memory(plain, x) == 112 * 4 + 1_536 + 2 * 2_048


def test_a_measurement_is_the_median_of_timed_runs_in_its_context() -> None:
    ctx = HardwareContext.current("cpu")
    assert (ctx.device, ctx.batch, ctx.precision, ctx.memory_format) == (
        "cpu",
        1,
        "fp32",
        "contiguous",
    )
    assert ctx.threads == torch.get_num_threads() and ctx.torch in torch.__version__
    m = measure(small_config(), ctx)
    assert m.runs == RUNS and m.latency_ms > 0 and m.memory_bytes and m.memory_bytes > 0
    # far over a limit: given up after the warm-up, the fastest warm-up run as a lower bound
    quick = measure(small_config(), ctx, memory=False, give_up_above=1e-6)
    assert quick.runs == 0 and quick.latency_ms > 1e-6 and quick.memory_bytes is None


class CountingMeter(HardwareMeter):
    """A meter whose measurements are made up and counted (the cache is what is tested)."""

    def _measure(self, candidate: Any, metric: str) -> dict[str, float]:
        self.measured += 1
        return {"latency": float(candidate.stem_width), "memory": 2.0 * candidate.stem_width}


def test_a_cached_measurement_is_reused_by_this_worker_and_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real = StudyRecord.measurements
    monkeypatch.setattr(
        StudyRecord, "measurements", lambda self, key: reads.append(key) or real(self, key)
    )
    ctx = HardwareContext.current("cpu")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/c.db", study_name="c")
    a, b = small_config(stem_width=8), small_config(stem_width=16)
    first = CountingMeter(ctx, ("latency", "memory"), store=StudyMeasurements(study, ctx))
    assert first(a, "latency") == 8.0 and first(a, "memory") == 16.0 and first(a, "latency") == 8
    assert first(b, "latency") == 16.0
    assert first.measured == 2 and first.served == 2
    # another worker of the same study: nothing measured again
    again = optuna.load_study(study_name="c", storage=f"sqlite:///{tmp_path}/c.db")
    second = CountingMeter(ctx, ("latency", "memory"), store=StudyMeasurements(again, ctx))
    assert second(b, "memory") == 32.0 and second(a, "latency") == 8.0
    assert second.measured == 0
    before = len(reads)
    assert second(b, "latency") == 16.0 and len(reads) == before  # remembered, not re-read
    assert set(StudyRecord(again).measurements(ctx.key)) == {arch_key(a), arch_key(b)}
    # another context (batch 8) is another cache
    other = HardwareContext(**{**ctx.to_dict(), "batch": 8})
    third = CountingMeter(other, ("latency",), store=StudyMeasurements(again, other))
    third(a, "latency")
    assert third.measured == 1
    # a meter without a study keeps its measurements in the process
    local = CountingMeter(ctx, ("latency",), store=MeasurementStore())
    local(a, "latency")
    local(a, "latency")
    assert local.measured == 1


def test_a_candidate_given_up_after_its_warm_up_is_rejected_with_a_lower_bound(
    tmp_path: Path,
) -> None:
    """Its latency is only known to be at least its fastest warm-up run: the reason says
    "≥", also when a later worker reads the measurement from the study."""
    from nas.budget import Budget, measure_metric

    ctx = HardwareContext.current("cpu")
    budget = Budget({"params": 1e9, "latency": 1e-6})
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/b.db", study_name="b")
    reasons = []
    for _ in range(2):  # the second meter is another worker: served from the study
        meter = HardwareMeter(
            ctx,
            ("latency",),
            store=StudyMeasurements(study, ctx),
            limits=budget.limits,
            fallback=measure_metric,
        )
        verdict = budget.check(small_config(), measure=meter)
        reasons.append(verdict.reason or "")
    assert meter.measured == 0 and meter.served == 1
    assert reasons[0] == reasons[1]
    assert reasons[0].startswith("≥") and reasons[0].endswith("(given up after the warm-up)")
    # a candidate timed in full is not marked
    full = HardwareMeter(ctx, ("latency",), limits={"latency": 1e6}, fallback=measure_metric)
    assert "≥" not in METRICS["latency"].over(full(small_config(), "latency"), 1e-6)


def test_another_device_is_refused_in_one_line_unless_remeasured() -> None:
    here = HardwareContext.current("cpu")
    check_same_hardware(None, here, "s", remeasure=False)  # nothing recorded: fine
    check_same_hardware(here.to_dict(), here, "s", remeasure=False)  # the same: fine
    gpu = {**here.to_dict(), "device": "cuda", "device_name": "NVIDIA H100", "batch": 32}
    with pytest.raises(NasError) as err:
        check_same_hardware(gpu, here, "s", remeasure=False)
    text = str(err.value)
    assert "\n" not in text and "NVIDIA H100" in text and "--remeasure" in text
    check_same_hardware(gpu, here, "s", remeasure=True)
    newer = {**here.to_dict(), "torch": "9.9.9"}  # recorded, not compared
    check_same_hardware(newer, here, "s", remeasure=False)


def _latency_limit(space: Path, data: Path) -> float:
    """A latency limit about a third of ``space``'s candidates fit: the third lowest
    :func:`stable_latency` of 9 sampled."""
    from nas.data import load_dataset
    from nas.space import load_space

    spec = load_space(str(space))
    images = load_dataset("imagefolder", data)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = []
    for _ in range(9):
        cfg = spec.suggest(
            study.ask(),
            in_channels=images.in_channels,
            input_size=images.input_size,
            num_classes=images.num_classes,
        )
        values.append(stable_latency(cfg))
    return sorted(values)[2]


def test_a_latency_limit_rejects_like_the_parameter_limit(
    tiny_space: Path, image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nas.hardware.measure as hardware

    monkeypatch.setattr(hardware, "measure", hardware.measure)  # undone after the test
    timed = install()
    limit = _latency_limit(tiny_space, image_folder)
    lines: list[str] = []
    study = tiny_search(
        tiny_space,
        image_folder,
        tmp_path / "l.db",
        "l",
        log=lines.append,
        trials=3,
        proxy_epochs=1,
        objectives=("accuracy", "latency"),
        latency_limit=limit,
    )
    assert timed, "the search measured nothing"
    rejected = [TrialRecord(t) for t in study.trials if is_rejected(t)]
    by_latency = [r for r in rejected if "latency > limit" in (r.rejected or "")]
    assert by_latency, [r.rejected for r in rejected]
    for r in by_latency:
        assert r.trial.state == optuna.trial.TrialState.PRUNED
        # what TPE and NSGA-II read: a positive constraint on latency, none on params
        assert r.trial.constraints["latency"] > 0 >= r.trial.constraints["params"]
        assert (r.value("latency") or 0) > limit
    trained = [TrialRecord(t) for t in study.trials if t.state.name == "COMPLETE"]
    assert len(trained) == 3
    for r in trained:
        assert r.trial.constraints["latency"] <= 0 and (r.value("latency") or 0) <= limit
        assert r.trial.values[1] == r.value("latency")
    recorded = StudyRecord(study).hardware
    assert recorded is not None and recorded["device"] == "cpu" and recorded["batch"] == 1
    assert any(line.startswith("hardware: ") for line in lines)
    # said once, right after the study line that says what the run trains on
    said = [i for i, line in enumerate(lines) if line.startswith("latency measured on")]
    study_line = next(i for i, line in enumerate(lines) if line.startswith("study "))
    assert said == [study_line + 1], lines


def test_the_three_objective_front_is_correct_on_a_hand_built_study() -> None:
    """Accuracy up, params and latency down: a trial is on the front unless another is at
    least as good in all three and better in one."""
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.set_metric_names([METRICS[m].dashboard for m in ("accuracy", "params", "latency")])
    points = {
        0: (0.90, 100.0, 5.0),  # front: best accuracy
        1: (0.80, 50.0, 5.0),  # front: fewer params
        2: (0.80, 100.0, 1.0),  # front: fastest
        3: (0.80, 100.0, 5.0),  # dominated by 0, 1 and 2
        4: (0.70, 60.0, 6.0),  # dominated by 1
        5: (0.85, 80.0, 3.0),  # front: no one is as good in all three
    }
    for accuracy, params, latency in points.values():
        trial = study.ask()
        trial.set_user_attr("accuracy", accuracy)
        trial.set_user_attr("params", params)
        trial.set_user_attr("latency", latency)
        trial.set_user_attr("arch", {"stem_width": int(params * 10 + latency)})
        study.tell(trial, [accuracy, params, latency])
    assert StudyRecord(study).costs == ("params", "latency")
    stats = study_stats(study)
    assert sorted(t.number for t in stats.pareto) == [0, 1, 2, 5]
    assert sorted(t.number for t in study.best_trials) == [0, 1, 2, 5]


def test_search_with_latency_cli_shows_it_everywhere(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    """The acceptance run in small: rejections by latency with the reason shown, the rest
    trained; report, dashboard note and export carry latency with its context; resuming
    with another batch (another context) is refused in one line, and --remeasure goes on."""
    limit = _latency_limit(tiny_space, image_folder)
    stable = subprocess_env(tmp_path / "site")
    db = tmp_path / "cli.db"
    base = [
        "search",
        "--space", str(tiny_space),
        "--dataset", "imagefolder",
        "--data-dir", str(image_folder),
        "--storage", f"sqlite:///{db}",
        "--study", "cli",
        "--device", "cpu",
        "--proxy-epochs", "1",
        "--proxy-batch-size", "16",
        "--sampler", "random",
        "--quiet",
    ]  # fmt: skip
    out = run_nas(
        *base,
        "--trials", "2", "--objectives", "accuracy,latency", "--latency-limit", f"{limit}ms",
        "--latency-batch", "4", env=stable,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "ms latency > limit" in out.stderr + out.stdout
    assert "latency ms" in out.stdout and "measured on" in out.stdout
    exported = tmp_path / "best.json"
    run = run_nas(
        "export", "--storage", f"sqlite:///{db}", "--study", "cli", "--best", "--out", str(exported)
    )
    assert run.returncode == 0, run.stderr
    import json

    meta = json.loads(exported.read_text())["meta"]
    assert meta["metrics"]["latency"]["unit"] == "ms" and meta["limits"][
        "latency"
    ] == pytest.approx(limit)
    assert meta["hardware"]["device"] == "cpu" and meta["hardware"]["batch"] == 4
    assert "memory" not in meta["hardware"]  # the study measured latency only
    assert "measured on" in run.stdout
    report = tmp_path / "r.html"
    run = run_nas("report", "--storage", f"sqlite:///{db}", "--study", "cli", "--out", str(report))
    assert run.returncode == 0, run.stderr
    html = report.read_text()
    assert (
        "latency (median of 30 timed runs after warm-up) measured on" in html
        and "Pareto front: accuracy vs latency" in html
    )
    from nas.dashboard import study_note

    study = optuna.load_study(study_name="cli", storage=f"sqlite:///{db}")
    assert "## Latency and memory" in study_note(study)
    for record in map(TrialRecord, study.trials):  # the stable latency reached the subprocess
        assert record.value("latency") == pytest.approx((record.value("params") or 0) / 1e4)
    refused = run_nas(*base, "--trials", "3", "--latency-batch", "1", env=stable)
    assert refused.returncode == 2
    assert "--remeasure" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert len(study.trials) == len(
        optuna.load_study(study_name="cli", storage=f"sqlite:///{db}").trials
    )
    # measured again at batch 1: new trials carry the new context, old ones keep theirs
    again = run_nas(*base, "--trials", "3", "--latency-batch", "1", "--remeasure", env=stable)
    assert again.returncode == 0, again.stderr
    assert "the latest of 2 contexts" in " ".join(again.stdout.split())  # rich wraps lines
    study = optuna.load_study(study_name="cli", storage=f"sqlite:///{db}")
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    batches = []
    for t in (trained[0], trained[-1]):
        out = tmp_path / f"t{t.number}.json"
        run = run_nas(
            "export", "--storage", f"sqlite:///{db}", "--study", "cli", "--trial",
            str(t.number), "--out", str(out),
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        batches.append(json.loads(out.read_text())["meta"]["hardware"]["batch"])
    assert batches == [4, 1]


def test_suggest_takes_a_latency_limit(tiny_space: Path) -> None:
    import nas

    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match=r"ms latency > limit 1e-06 ms|latency > limit"):
        nas.suggest(trial, tiny_space, input_size=16, num_classes=3, latency_limit="1ns")
    record = TrialRecord(study.trials[0])
    assert record.trial.constraints["latency"] > 0 and (record.value("latency") or 0) > 0


def test_the_caption_names_the_context_of_the_values_a_front_shows() -> None:
    """Right after --remeasure (batch 1 -> 4) no trial of batch 4 is trained, so fronts
    still show batch-1 values: the caption says batch 1, and that the study measures at
    batch 4 now; once a batch-4 trial is trained, the caption is batch 4's."""
    from nas.hardware.context import HardwareContext, study_hardware_text
    from nas.presets import preset
    from nas.study.record import StudyRecord

    first, second = HardwareContext.current("cpu", 1, 2), HardwareContext.current("cpu", 4, 2)
    study = optuna.create_study(directions=["maximize", "minimize"])
    record = StudyRecord(study)
    record.set_hardware(first.to_dict(), first.key)

    def trained(context: HardwareContext) -> optuna.trial.FrozenTrial:
        attrs = {"arch": preset("resnet20").to_dict(), "accuracy": 0.5, "params": 1000,
                 "latency": 1.0, "measured_in": context.key}  # fmt: skip
        return optuna.trial.create_trial(values=[0.5, 1.0], user_attrs=attrs)

    study.add_trial(trained(first))
    record.set_hardware(second.to_dict(), second.key)  # --remeasure --latency-batch 4
    text = " ".join(study_hardware_text(study).split())
    assert text.startswith(f"latency measured on {first.describe()} (one of 2 contexts")
    assert f"the study measures on {second.describe()} since --remeasure" in text
    study.add_trial(trained(second))
    text = study_hardware_text(study)
    assert text.startswith(f"latency measured on {second.describe()} (the latest of 2 contexts")


def test_the_cpu_memory_estimate_counts_the_attention_scores() -> None:
    """SAGAN self-attention (Q and K narrower than V) takes the math path, which holds the
    scores and their softmax, batch x HW x HW each: the estimate missed them (20-80x
    under what a forward pass took); mhsa's fused kernel holds no such matrix."""
    import torch

    from nas.hardware.measure import estimate_forward_memory
    from nas.models.attention.self_attention import MultiHeadSelfAttention, SelfAttention

    x = torch.randn(8, 32, 16, 16)
    scores = 8 * 256 * 256 * 4  # one head, 16x16 positions, fp32
    sagan = estimate_forward_memory(SelfAttention(32).eval(), x)
    mhsa = estimate_forward_memory(MultiHeadSelfAttention(32, heads=4).eval(), x)
    assert sagan >= 2 * scores > mhsa
