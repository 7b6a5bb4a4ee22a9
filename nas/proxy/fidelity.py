"""How well a study's proxy ranked its fully trained winners: Kendall's tau between proxy
accuracy and validation accuracy after full training, with an interval (stored by
``nas train-winners``, shown by the summary, the report and the dashboard)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

from optuna.trial import FrozenTrial

from nas.study.stats import accuracy_of, full_val_accuracy


class ProxyFidelity(TypedDict):
    """How well proxy accuracy ranks the fully trained winners.

    Attributes:
        tau: Kendall's tau between proxy ``accuracy`` and ``full_val_accuracy``; None with
            fewer than two winners or when it is undefined (all values equal).
        n: number of trials with both accuracies.
        trials: their trial numbers, in order.
        tau_low, tau_high: a bootstrap 90% interval of tau (None with fewer than 3).
    """

    tau: float | None
    n: int
    trials: list[int]
    tau_low: float | None
    tau_high: float | None


#: Below this many fully trained winners, a proxy-fidelity tau is flagged as meaning little.
FIDELITY_MIN_N = 5


def fidelity_text(fidelity: ProxyFidelity) -> str:
    """``Kendall's tau 0.67 [90%: 0.20, 1.00], n=6`` or why there is none, with a warning
    when it rests on fewer than :data:`FIDELITY_MIN_N` winners."""
    n = fidelity["n"]
    if n < 2:
        return f"not enough fully trained winners, n={n}"
    if fidelity["tau"] is None:
        return f"Kendall's tau undefined (constant accuracies), n={n}"
    text = f"Kendall's tau {fidelity['tau']:.2f}"
    low, high = fidelity.get("tau_low"), fidelity.get("tau_high")
    if low is not None and high is not None:
        text += f" [90%: {low:.2f}, {high:.2f}]"
    text += f", n={n}"
    if n < FIDELITY_MIN_N:
        text += f" (fewer than {FIDELITY_MIN_N} winners: it means little)"
    return text


def proxy_fidelity(trials: Sequence[FrozenTrial]) -> ProxyFidelity:
    """Kendall's tau between proxy ``accuracy`` and ``full_val_accuracy`` of the trained
    winners (both on the validation split; the test split never enters a ranking).

    Only trials with both user attributes count. ``tau`` is None with fewer than two of them
    or when it is undefined (constant accuracies), so the result is plain JSON (it is stored
    as the study user attribute ``proxy_fidelity`` by ``nas train-winners``).
    """
    from scipy.stats import kendalltau

    from nas.proxy.ranking import agreement

    pairs = [
        (t.number, accuracy_of(t), full_val_accuracy(t))
        for t in sorted(trials, key=lambda t: t.number)
        if full_val_accuracy(t) is not None and accuracy_of(t) is not None
    ]
    tau: float | None = None
    low: float | None = None
    high: float | None = None
    if len(pairs) >= 2:
        proxy = [float(p[1] or 0.0) for p in pairs]
        full = [float(p[2] or 0.0) for p in pairs]
        value = float(kendalltau(proxy, full).statistic)
        tau = value if math.isfinite(value) else None
        if len(pairs) >= 3:
            interval = agreement(proxy, full)
            low, high = interval["tau_low"], interval["tau_high"]
    return {
        "tau": tau,
        "n": len(pairs),
        "trials": [p[0] for p in pairs],
        "tau_low": low,
        "tau_high": high,
    }
