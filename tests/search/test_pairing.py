"""Paired proxies: every trial of a study trains on identical batches in identical order
(common random numbers), and a re-run of a study reproduces it bit for bit on the CPU."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch

from nas.training.trainer import Trainer
from tests.conftest import tiny_search


def _search(space: Path, data: Path, db: Path) -> optuna.Study:
    return tiny_search(
        space, data, db, "pair", trials=3, proxy_epochs=2, proxy_subset=96, proxy_val=12
    )


@pytest.mark.slow
def test_trials_of_one_study_see_identical_batches(
    tiny_space: Path, image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: dict[int, list[tuple[int, tuple[int, ...]]]] = defaultdict(list)
    first_weights: dict[int, float] = {}
    original = Trainer._batches

    def recording(self: Trainer, x: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first_weights.setdefault(id(self), float(next(self.model.parameters()).detach().sum()))
        for xb, yb in original(self, x):
            batches[id(self)].append((int(xb.to(torch.int64).sum()), tuple(yb.tolist())))
            yield xb, yb

    monkeypatch.setattr(Trainer, "_batches", recording)
    study = _search(tiny_space, image_folder, tmp_path / "a.db")
    runs = list(batches.values())
    assert len(runs) == 3 and len(runs[0]) == 2 * 6  # 2 epochs of 96 images in batches of 16
    assert runs[0] == runs[1] == runs[2]  # the same crops, flips and order for every trial
    assert len(set(first_weights.values())) == 3  # but each trial has its own initial weights
    archs = [t.user_attrs["arch"] for t in study.trials if t.state.name == "COMPLETE"]
    assert len(archs) == 3


@pytest.mark.slow
def test_a_rerun_of_a_study_is_bitwise_equal_on_cpu(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    first = _search(tiny_space, image_folder, tmp_path / "first.db")
    second = _search(tiny_space, image_folder, tmp_path / "second.db")

    def results(study: optuna.Study) -> list[tuple[object, ...]]:
        return [
            (t.number, t.state, t.user_attrs.get("arch"), t.user_attrs.get("curve"))
            for t in study.trials
        ]

    assert results(first) == results(second)
    trained = [t for t in first.trials if t.state.name == "COMPLETE"]
    assert trained and all(t.user_attrs.get("curve") for t in trained)
    for t in trained:  # zero-cost scores on every trained trial, equal across the re-run
        scores = t.user_attrs["zero_cost"]
        assert {"params", "flops", "synflow", "naswot", "grad_norm"} <= set(scores)
        assert scores["params"] == t.user_attrs["params"]
        again = second.trials[t.number].user_attrs["zero_cost"]
        assert {k: v for k, v in scores.items() if k != "seconds"} == {
            k: v for k, v in again.items() if k != "seconds"
        }
