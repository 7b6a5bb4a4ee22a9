"""Rank agreement between a cheap score and a reference ranking.

:func:`agreement` gives Kendall's tau-b and Spearman's rho over every candidate (a failed
candidate or a non-finite score ranks last, never dropped), an analytic 90% interval of tau
that stays open at tau = +-1 (:func:`tau_interval`), and Kendall's tau among candidates of
about the same size (within :data:`SAME_SIZE_FACTOR` of each other), the figure that matters
to a search for the accuracy-vs-parameters Pareto front, with a bootstrap 90% interval.
:func:`candidates_needed` says how large a panel would make an observed tau conclusive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

#: Two candidates are "of about the same size" when the larger has at most this many times
#: the parameters of the smaller (inclusive). A Pareto search compares candidates across
#: sizes by the size itself; what the score must get right is the order within a size.
SAME_SIZE_FACTOR = 1.5

#: The two-sided 90% normal quantile used by every interval here.
Z90 = 1.645

#: Fieller, Hartley & Pearson (1957): the variance of atanh(tau) is about 0.437 / (n - 4).
FHP_VARIANCE = 0.437

#: The fewest candidates with an analytic interval (the variance needs n > 4).
MIN_INTERVAL_N = 5

#: The fewest candidates with a rank correlation.
MIN_N = 3


class Agreement(TypedDict):
    """How well ``scores`` rank like ``reference`` (None where undefined).

    Attributes:
        kendall_tau, spearman: Kendall's tau-b and Spearman's rho over every candidate.
        tau_low, tau_high: the analytic 90% interval of Kendall's tau (:func:`tau_interval`;
            None below :data:`MIN_INTERVAL_N` candidates).
        n: how many candidates the figures rest on (failed ones included, ranked last).
        same_size_tau: Kendall's tau-b over only the pairs of candidates within
            :data:`SAME_SIZE_FACTOR` of each other in size (None without sizes, without such
            pairs, or where every such pair ties in one ranking).
        same_size_pairs: how many such pairs (None without sizes).
        same_size_low, same_size_high: its 90% bootstrap interval over candidates
            (:func:`same_size_agreement`).
    """

    kendall_tau: float | None
    spearman: float | None
    tau_low: float | None
    tau_high: float | None
    n: int
    same_size_tau: float | None
    same_size_pairs: int | None
    same_size_low: float | None
    same_size_high: float | None


class SameSize(TypedDict):
    """Kendall's tau among candidates of about the same size (see :class:`Agreement`)."""

    same_size_tau: float | None
    same_size_pairs: int | None
    same_size_low: float | None
    same_size_high: float | None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def ranks(values: Sequence[float | None]) -> np.ndarray:
    """Average ranks of ``values`` (1 = lowest); None and non-finite values rank below every
    finite one (rank 0), tied with each other: a failed candidate ranks last."""
    from scipy.stats import rankdata

    x = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    finite = np.isfinite(x)
    out = np.zeros(len(x))
    if finite.any():
        out[finite] = rankdata(x[finite])
    return out


def tau_interval(tau: float, n: int) -> tuple[float, float] | None:
    """The 90% interval of Kendall's tau observed over ``n`` candidates, or None for
    ``n < 5``.

    Fieller, Hartley & Pearson (1957), "Tests for rank correlation coefficients. I",
    Biometrika 44(3/4), 470-481: on Fisher's scale z = atanh(tau) the standard error is
    about sqrt(0.437 / (n - 4)); the interval is tanh(z -+ 1.645 SE). ``|tau|`` is first capped
    at 1 - 1/P with P = n(n - 1)/2 pairs (half a discordant pair away from +-1), so a
    perfect sample gets a finite-width interval instead of [1, 1]; the interval always
    holds the observed tau (at tau = 1 its upper end is 1).
    """
    if n < MIN_INTERVAL_N or not math.isfinite(tau):
        return None
    cap = 1.0 - 2.0 / (n * (n - 1))
    z = math.atanh(max(-cap, min(cap, tau)))
    half = Z90 * math.sqrt(FHP_VARIANCE / (n - 4))
    return min(math.tanh(z - half), tau), max(math.tanh(z + half), tau)


def candidates_needed(tau: float, target: float) -> int | None:
    """About how many candidates would put the lower end of :func:`tau_interval` at
    ``target`` or above, were Kendall's tau to stay at ``tau``; None when ``tau <= target``
    (no panel is large enough) or ``target >= 1``.

    Solves tanh(atanh(tau) - 1.645 sqrt(0.437 / (n - 4))) >= target for n:
    n >= 4 + 0.437 (1.645 / (atanh(tau) - atanh(target)))^2, rounded up (at least 5), then
    steps up while the cap of ``|tau|`` at 1 - 1/P keeps the lower end below ``target``.
    """
    if not (math.isfinite(tau) and math.isfinite(target)) or tau <= target or target >= 1:
        return None

    def low(n: int) -> float:
        interval = tau_interval(tau, n)
        assert interval is not None
        return interval[0]

    if tau >= 1:
        n = MIN_INTERVAL_N
    else:
        gap = math.atanh(tau) - (math.atanh(target) if target > -1 else -math.inf)
        n = max(MIN_INTERVAL_N, math.ceil(4 + FHP_VARIANCE * (Z90 / gap) ** 2))
    while n > MIN_INTERVAL_N and low(n - 1) >= target:  # rounding in the closed form
        n -= 1
    while low(n) < target:
        n += 1
    return n


def _same_size(sizes: Sequence[float]) -> np.ndarray:
    """``m[i, j]``: candidates i != j are within :data:`SAME_SIZE_FACTOR` of each other."""
    s = np.array([float(v) for v in sizes], dtype=float)
    ok = np.isfinite(s) & (s > 0)
    big = np.maximum(s[:, None], s[None, :])
    small = np.minimum(s[:, None], s[None, :])
    with np.errstate(invalid="ignore"):
        m = np.asarray((big <= SAME_SIZE_FACTOR * small) & ok[:, None] & ok[None, :])
    np.fill_diagonal(m, False)
    return m


def _pair_counts(
    rx: np.ndarray, ry: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Over the pairs i < j of each row where ``mask`` holds: C - D, the pairs not tied in x,
    the pairs not tied in y, and how many pairs (``rx``, ``ry``: (R, n), ``mask``: (R, n, n))."""
    upper = np.triu(np.ones(mask.shape[-2:], dtype=bool), k=1)
    m = mask & upper
    sx = np.sign(rx[:, :, None] - rx[:, None, :])
    sy = np.sign(ry[:, :, None] - ry[:, None, :])
    s = ((sx * sy) * m).sum(axis=(1, 2))
    ax = ((sx != 0) & m).sum(axis=(1, 2))
    ay = ((sy != 0) & m).sum(axis=(1, 2))
    return s, ax, ay, m.sum(axis=(1, 2))


def same_size_agreement(
    rx: np.ndarray,
    ry: np.ndarray,
    sizes: Sequence[float],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> SameSize:
    """Kendall's tau-b of ranks ``rx`` against ``ry`` over only the pairs of candidates of
    about the same size (within :data:`SAME_SIZE_FACTOR`), and its 90% bootstrap interval.

    tau-b restricted to those pairs: (C - D) / sqrt((P - Tx)(P - Ty)), C/D the concordant and
    discordant pairs, P the pairs, Tx/Ty those tied in one ranking; over all pairs it is
    scipy's tau-b. The interval: ``resamples`` draws of the candidates with replacement
    (``seed`` fixed), pairs of distinct candidates among the draws, each draw's C and D
    counted as C + 1/2 and D + 1/2 (Jeffreys smoothing: (C - D) / sqrt((P - Tx + 1)(P - Ty +
    1))), so a perfect sample does not collapse to [1, 1]; the 5th and 95th percentiles,
    shifted by the estimate minus the resamples' median (the smoothing pulls every resample
    towards 0, and a percentile interval that is not re-centred can miss its own estimate),
    and kept within [-1, 1]. The median lies between the two percentiles, so the interval
    always contains the estimate it is reported with.
    """
    same = _same_size(sizes)
    n = len(rx)
    s, ax, ay, pairs = (int(v[0]) for v in _pair_counts(rx[None], ry[None], same[None]))
    if pairs == 0 or ax == 0 or ay == 0:
        return {
            "same_size_tau": None,
            "same_size_pairs": pairs,
            "same_size_low": None,
            "same_size_high": None,
        }
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // max(1, n * n))
    values: list[np.ndarray] = []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, (min(chunk, resamples - start), n))
        bs, bx, by, _ = _pair_counts(rx[idx], ry[idx], same[idx[:, :, None], idx[:, None, :]])
        informative = (bx + by) > 0
        values.append(bs[informative] / np.sqrt((bx[informative] + 1.0) * (by[informative] + 1)))
    taus = np.concatenate(values) if values else np.array([])
    tau = s / math.sqrt(ax * ay)
    low = high = None
    if len(taus):
        shift = tau - float(np.median(taus))
        low = max(-1.0, float(np.percentile(taus, 5)) + shift)
        high = min(1.0, float(np.percentile(taus, 95)) + shift)
    return {
        "same_size_tau": tau,
        "same_size_pairs": pairs,
        "same_size_low": low,
        "same_size_high": high,
    }


def agreement(
    scores: Sequence[float | None],
    reference: Sequence[float | None],
    *,
    sizes: Sequence[float] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> Agreement:
    """How well ``scores`` rank the candidates the way ``reference`` does (higher is better
    in both).

    A None or non-finite value (a failed candidate, a non-finite score) ranks last in its
    ranking, tied with the other such values; nothing is dropped, so ``n`` counts every
    candidate. Kendall's tau-b (scipy) and Spearman's rho need :data:`MIN_N` candidates; the
    interval of tau is :func:`tau_interval`. With ``sizes`` (parameter counts, one per
    candidate), the same-size figures of :func:`same_size_agreement` (``resamples`` and
    ``seed`` are its bootstrap's).
    """
    from scipy.stats import kendalltau, spearmanr

    if len(scores) != len(reference) or (sizes is not None and len(sizes) != len(scores)):
        raise ValueError(
            f"agreement needs one value per candidate: {len(scores)} scores, "
            f"{len(reference)} reference values"
            + (f", {len(sizes)} sizes" if sizes is not None else "")
        )
    n = len(scores)
    rx, ry = ranks(scores), ranks(reference)
    same: SameSize = {
        "same_size_tau": None,
        "same_size_pairs": None,
        "same_size_low": None,
        "same_size_high": None,
    }
    if sizes is not None:
        same = same_size_agreement(rx, ry, sizes, resamples=resamples, seed=seed)
    tau = rho = low = high = None
    constant = len(set(np.asarray(rx).tolist())) < 2 or len(set(np.asarray(ry).tolist())) < 2
    if n >= MIN_N and not constant:  # a constant side has no rank correlation (no warning)
        tau = _finite(kendalltau(rx, ry).statistic)
        rho = _finite(spearmanr(rx, ry).statistic)
        interval = tau_interval(tau, n) if tau is not None else None
        if interval is not None:
            low, high = interval
    return {
        "kendall_tau": tau,
        "spearman": rho,
        "tau_low": low,
        "tau_high": high,
        "n": n,
        **same,
    }
