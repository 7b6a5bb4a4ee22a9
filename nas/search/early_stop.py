"""Early stopping of hopeless proxies that works for multi-objective studies.

Optuna's pruners refuse multi-objective studies, so this one compares learning curves
directly (every trial records its per-epoch validation accuracy as the user attribute
``curve``, written after each epoch so that other workers see it too):

* **successive halving among peers**: at epoch k, a trial whose accuracy is below the
  top 1/eta (rounded up) of the epoch-k accuracies of trials of comparable size (parameters
  within a factor ``size_ratio``) is stopped, once there are ``min_peers`` such trials;
* **dominance**: a trial is stopped when a finished trial with no more parameters was
  already better at epoch k by ``margin`` and finished better than this trial is now.

Nothing is stopped at the last epoch, where stopping saves nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState


@dataclass(frozen=True)
class CurvePoint:
    """What the stopper knows of another trial."""

    number: int
    params: int
    curve: tuple[float, ...]
    finished: bool


def curve_points(trials: Sequence[FrozenTrial], exclude: int | None = None) -> list[CurvePoint]:
    """The curves recorded in ``trials`` (all but trial number ``exclude``)."""
    points = []
    for t in trials:
        curve = t.user_attrs.get("curve")
        params = t.user_attrs.get("params")
        if t.number == exclude or not curve or params is None:
            continue
        finished = t.state == TrialState.COMPLETE
        points.append(CurvePoint(t.number, int(params), tuple(curve), finished))
    return points


@dataclass(frozen=True)
class EarlyStopper:
    """Decides, after each epoch, whether a proxy is hopeless.

    Attributes:
        eta: keep the top 1/eta of peers (3: a trial must be in the top third).
        min_peers: peers needed before the halving rule acts.
        size_ratio: peers have parameters within this factor of the trial's.
        margin: accuracy margin of the dominance rule.
    """

    eta: float = 3.0
    min_peers: int = 4
    size_ratio: float = 2.0
    margin: float = 0.02

    def check(
        self, others: Sequence[CurvePoint], params: int, epoch: int, epochs: int, accuracy: float
    ) -> str | None:
        """Why the trial should stop after ``epoch`` (1-based) of ``epochs``, or None."""
        if epoch >= epochs:
            return None
        k = epoch - 1
        peers = [
            p.curve[k]
            for p in others
            if len(p.curve) > k and params / self.size_ratio <= p.params <= params * self.size_ratio
        ]
        if len(peers) >= self.min_peers:
            ranked = sorted(peers, reverse=True)
            keep = math.ceil(len(ranked) / self.eta)  # 4-6 peers: beat the 2nd best
            cutoff = ranked[keep - 1]
            if accuracy < cutoff:
                return (
                    f"epoch {epoch} accuracy {accuracy:.3f} is below the top 1/{self.eta:g} "
                    f"({cutoff:.3f}) of {len(peers)} trials of comparable size"
                )
        for p in others:
            if (
                p.finished
                and p.params <= params
                and len(p.curve) > k
                and p.curve[k] >= accuracy + self.margin
                and p.curve[-1] >= accuracy + self.margin
            ):
                return (
                    f"dominated by trial {p.number} ({p.params:,} params, epoch {epoch} "
                    f"accuracy {p.curve[k]:.3f} vs {accuracy:.3f})"
                )
        return None
