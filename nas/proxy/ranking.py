"""Rank agreement between a cheap score and a reference, with bootstrap intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np


class Agreement(TypedDict):
    """How well ``scores`` rank like ``reference`` (None where undefined).

    Attributes:
        kendall_tau, spearman: the rank correlations.
        tau_low, tau_high: a bootstrap 90% interval of Kendall's tau (candidates resampled).
        n: how many candidates the figures rest on.
    """

    kendall_tau: float | None
    spearman: float | None
    tau_low: float | None
    tau_high: float | None
    n: int


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def agreement(
    scores: Sequence[float], reference: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> Agreement:
    """Kendall's tau and Spearman's rho of ``scores`` against ``reference`` (pairs with a
    non-finite member are left out), and a 90% percentile bootstrap interval of tau."""
    from scipy.stats import kendalltau, spearmanr

    pairs = [
        (float(a), float(b))
        for a, b in zip(scores, reference, strict=True)
        if math.isfinite(a) and math.isfinite(b)
    ]
    n = len(pairs)
    if n < 3:
        return {"kendall_tau": None, "spearman": None, "tau_low": None, "tau_high": None, "n": n}
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    tau = _finite(kendalltau(x, y).statistic)
    rho = _finite(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        value = kendalltau(x[idx], y[idx]).statistic
        if math.isfinite(value):
            taus.append(value)
    low = float(np.percentile(taus, 5)) if taus else None
    high = float(np.percentile(taus, 95)) if taus else None
    return {"kendall_tau": tau, "spearman": rho, "tau_low": low, "tau_high": high, "n": n}
