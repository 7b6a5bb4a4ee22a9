"""The live table and the log lines render every event without a terminal."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from nas.presets import preset
from nas.search.events import LiveMonitor, LogMonitor, Totals
from nas.search.objective import ArchSpace
from nas.training import EpochResult


def feed(monitor: LiveMonitor | LogMonitor) -> None:
    label = ArchSpace(None).label(preset("resnet20-cbam"))
    with monitor:
        monitor.totals(Totals(0, 3, 0, 0, 0, None))
        monitor.rejected(0, "6.10M params > limit 5.00M", 0.004)
        monitor.trial_started(1, label, {"params": 270_813, "flops": 41_381_984}, 2)
        monitor.epoch_done(1, EpochResult(1, 2, 2.1, 0.4321, 3.0, 500.0))
        monitor.totals(Totals(0, 3, 1, 0, 0, None))
        monitor.trial_finished(1, "complete", "accuracy 0.4321")
        monitor.totals(Totals(1, 3, 1, 0, 0, 0.4321))


def test_live_table_shows_trials_and_totals() -> None:
    buffer = io.StringIO()
    feed(LiveMonitor(Console(file=buffer, force_terminal=True, width=120)))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())  # colours, cursor
    assert "cbam/after_stage/weighted" in text and "270.81k" in text and "0.4321" in text
    assert "trained 1/3" in text and "rejected 1" in text and "best val acc 0.4321" in text


def test_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    feed(LogMonitor())
    err = capsys.readouterr().err
    assert "trial 0 rejected in 4 ms: 6.10M params > limit 5.00M" in err
    assert "trial 1 epoch 1/2: val acc 0.4321" in err and "trial 1 complete" in err
    assert (
        "trial 1 training: cbam/after_stage/weighted, 270.81k params, 41.38M FLOPs, 2 epochs" in err
    )
