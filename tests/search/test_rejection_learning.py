"""The sampler learns the parameter limit from rejected trials (default space, TPE).

Training is replaced by a quick synthetic score so that a 90-trial study runs in seconds;
everything else (space, counting, rejection, constraints, the loop) is the real search.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna

from nas.config import ArchConfig
from nas.search.events import LogMonitor
from nas.search.objective import Objective
from nas.search.runner import run_search
from nas.search.settings import SearchSettings
from nas.search.stats import is_rejected, study_stats
from tests.conftest import DEFAULT_SPACE


class SyntheticObjective(Objective):
    """The real objective with training replaced by a score that grows with size."""

    def _train(
        self, trial: optuna.trial.Trial, arch: ArchConfig, params: int, flops: int, started: float
    ) -> tuple[float, float]:
        accuracy = min(0.95, 0.3 + 0.04 * math.log(params))
        trial.set_user_attr("curve", [accuracy])
        trial.set_user_attr("accuracy", accuracy)
        return accuracy, float(params)


def test_rejection_rate_falls_as_tpe_learns_the_limit(tmp_path: Path) -> None:
    settings = SearchSettings(
        space=str(DEFAULT_SPACE),
        dataset="fake",
        param_limit=300_000,
        trials=45,
        sampler="tpe",
        storage=f"sqlite:///{tmp_path}/s.db",
        study="learn",
        seed=0,
        device="cpu",
    )
    outcome = run_search(
        settings, LogMonitor(), objective_cls=SyntheticObjective, log=lambda text: None
    )
    stats = study_stats(outcome.study)
    assert stats.trained == 45
    assert stats.rejection_first_third is not None and stats.rejection_last_third is not None
    assert stats.rejection_first_third >= 0.3
    assert stats.rejection_last_third <= 0.5 * stats.rejection_first_third
    rejected = [t for t in stats.trials if is_rejected(t)]
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in rejected)
    assert all(t.constraints["params"] > 0 for t in rejected)
    assert all("curve" not in t.user_attrs for t in rejected)
