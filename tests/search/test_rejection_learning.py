"""The sampler learns the parameter limit from rejected trials (default space, TPE).

Training is replaced by a quick synthetic score (``benchmarks/rejection_learning.py``) so that
a 45-trial study runs in seconds; everything else (space, counting, rejection, constraints,
the loop) is the real search.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from benchmarks.rejection_learning import measure
from nas.search.stats import is_rejected
from tests.conftest import DEFAULT_SPACE


def test_rejection_rate_falls_as_tpe_learns_the_limit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    result = measure(str(DEFAULT_SPACE), 45, 300_000, "tpe", 0, url)
    assert result["trained"] == 45
    first, last = result["rejection_first_third"], result["rejection_last_third"]
    assert first is not None and last is not None
    assert first >= 0.3
    assert last <= 0.5 * first
    study = optuna.load_study(study_name="learn", storage=url)
    rejected = [t for t in study.trials if is_rejected(t)]
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in rejected)
    assert all(t.constraints["params"] > 0 for t in rejected)
    assert all("curve" not in t.user_attrs for t in rejected)
