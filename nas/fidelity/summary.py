"""What ``nas fidelity`` reports: each rung's (and each zero-cost score's) agreement with the
reference ranking over the whole panel, its share of the reference's training work, and the
recommended rung.

Read from the study alone (the jobs' trials and the ``panel`` user attribute written by
:mod:`nas.fidelity.panel`), so any worker, or a later ``nas fidelity`` run with every job
done, prints the same summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from nas.fidelity.ladder import Rung
from nas.proxy.ranking import SAME_SIZE_FACTOR, Agreement, agreement, candidates_needed
from nas.study.record import StudyRecord, TrialRecord
from nas.training.recipe import DEFAULT_PROXY_RECIPE

if TYPE_CHECKING:
    from nas.fidelity.settings import FidelitySettings


@dataclass
class _Jobs:
    """The finished jobs of one rung, by candidate."""

    accuracy: dict[int, float] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    curves: dict[int, list[float]] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)

    def done(self, i: int) -> bool:
        """Whether candidate ``i`` was trained, or failed in training, at this rung."""
        return i in self.accuracy or i in self.failed

    def counts(self, panel: int) -> dict[str, Any]:
        trained, failed = len(self.accuracy), len(self.failed)
        return {
            "trained": trained,
            "failed": failed,
            "complete": panel > 0 and trained + failed == panel,
        }


def _read_jobs(study: optuna.Study, settings: FidelitySettings, panel: int) -> dict[str, _Jobs]:
    """Every rung's finished jobs: a COMPLETE trial is a trained candidate, a FAIL trial with
    ``training_failed`` one that failed in training (a NaN loss: it is not retried)."""
    jobs = {r.label: _Jobs() for r in settings.rungs}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        r = TrialRecord(t)
        job = r.job
        if job is None or job[1] not in jobs or not 0 <= job[0] < panel:
            continue
        i, rung = job[0], jobs[job[1]]
        if t.state == TrialState.COMPLETE:
            rung.accuracy[i] = float(r.accuracy or 0.0)
            rung.seconds[i] = float(r.seconds or 0.0)
            rung.curves[i] = list(r.curve)
        elif r.training_failed:
            rung.failed.add(i)
    for rung in jobs.values():
        rung.failed -= set(rung.accuracy)
    return jobs


def _at_epoch(jobs: _Jobs, i: int, epoch: int) -> float | None:
    """Candidate ``i``'s validation accuracy after ``epoch`` (None: failed, or no curve)."""
    curve = jobs.curves.get(i, [])
    return curve[epoch - 1] if len(curve) >= epoch else None


def summarize(study: optuna.Study, settings: FidelitySettings, available: int) -> dict[str, Any]:
    """The ``--json`` object of ``nas fidelity``; ``available`` is the number of training
    images outside the validation split (what a rung of ``all`` images trains on).

    Keys: ``study``, ``panel`` (candidates), ``same_size_factor``, ``rungs`` (in ladder
    order), ``zero_cost`` (score name -> :class:`~nas.proxy.ranking.Agreement`),
    ``reference``, ``target_tau``, ``recommended`` (a rung label or None), ``reason`` (why
    none, else None), ``study_file`` (the recommended rung's study-file lines, else None).

    Each rung: ``rung``, ``epochs``, ``subset``, ``recipe``, every Agreement key
    (``kendall_tau``, ``spearman``, ``tau_low``, ``tau_high``, ``n``, ``same_size_tau``,
    ``same_size_pairs``, ``same_size_low``, ``same_size_high``), ``trained``, ``failed``,
    ``complete``, ``mean_accuracy``, ``cost_share`` (training images seen, as a share of the
    reference's: ``rung.images(available) / reference.images(available)``), ``seconds``
    (measured, summed over its jobs, on whichever workers ran them) and ``partial``: for
    each epoch k before the last, the Agreement of the accuracy after epoch k (from each
    job's ``curve``) with ``at_epoch``, ``mean_accuracy`` and ``cost_share`` (empty for a
    one-epoch rung).

    Agreements rest on the whole panel: a candidate that failed at the rung or at the
    reference ranks last there. Until every job of a rung and of the reference is done they
    rest on the candidates done at both (``n`` says how many), and the rung is not
    ``complete``. Sizes for the same-size figures are the panel's parameter counts.
    ``recommended`` is the cheapest complete rung whose tau interval's lower end reaches
    ``target_tau`` (the reference complete too).
    """
    panel = StudyRecord(study).panel_any
    size = len(panel)
    jobs = _read_jobs(study, settings, size)
    ref_rung = settings.reference
    ref = jobs[ref_rung.label]
    ref_images = ref_rung.images(available)

    def compare(values: dict[int, float | None], candidates: list[int]) -> Agreement:
        return agreement(
            [values.get(i) for i in candidates],
            [ref.accuracy.get(i) for i in candidates],
            sizes=[float(panel[i]["params"]) for i in candidates],
        )

    rungs: list[dict[str, Any]] = []
    for r in settings.ladder:
        got = jobs[r.label]
        both = [i for i in range(size) if got.done(i) and ref.done(i)]
        accuracy: dict[int, float | None] = dict(got.accuracy)
        partial = []
        for k in range(1, r.epochs):
            early = {i: _at_epoch(got, i, k) for i in got.accuracy}
            partial.append(
                {
                    "at_epoch": k,
                    **compare(early, both),
                    "mean_accuracy": _mean([v for v in early.values() if v is not None]),
                    "cost_share": Rung(k, r.subset, r.recipe).images(available) / ref_images,
                }
            )
        rungs.append(
            {
                "rung": r.label,
                "epochs": r.epochs,
                "subset": r.subset,
                "recipe": r.recipe,
                **compare(accuracy, both),
                **got.counts(size),
                "mean_accuracy": _mean(list(got.accuracy.values())),
                "cost_share": r.images(available) / ref_images,
                "seconds": sum(got.seconds.values()),
                "partial": partial,
            }
        )
    zero_cost: dict[str, Agreement] = {}
    scored = [i for i in range(size) if ref.done(i)]
    names = sorted({k for p in panel for k in p.get("zero_cost", {}) if k != "seconds"})
    for name in names:
        scores = {i: _score(panel[i].get("zero_cost", {}).get(name)) for i in scored}
        zero_cost[name] = compare(scores, scored)
    reference = {
        "rung": ref_rung.label,
        "epochs": ref_rung.epochs,
        "subset": ref_rung.subset,
        "recipe": ref_rung.recipe,
        **ref.counts(size),
        "mean_accuracy": _mean(list(ref.accuracy.values())),
        "cost_share": 1.0,
        "seconds": sum(ref.seconds.values()),
    }
    recommended, reason = _recommend(rungs, reference, size, settings.target_tau)
    return {
        "study": study.study_name,
        "panel": size,
        "same_size_factor": SAME_SIZE_FACTOR,
        "rungs": rungs,
        "zero_cost": zero_cost,
        "reference": reference,
        "target_tau": settings.target_tau,
        "recommended": recommended["rung"] if recommended else None,
        "reason": reason,
        "study_file": _study_lines(recommended, settings) if recommended else None,
    }


def _score(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _recommend(
    rungs: list[dict[str, Any]], reference: dict[str, Any], panel: int, target: float
) -> tuple[dict[str, Any] | None, str | None]:
    """The cheapest complete rung whose tau interval's lower end reaches ``target``, or None
    and a sentence starting with ``undecided:`` saying why."""
    if not reference["complete"]:
        return None, (
            f"undecided: the reference {reference['rung']} is incomplete "
            f"({_done(reference, panel)}); run the same command again to finish it"
        )
    order = sorted(enumerate(rungs), key=lambda ir: (ir[1]["cost_share"], ir[1]["seconds"], ir[0]))
    for _, r in order:
        if r["complete"] and r["tau_low"] is not None and r["tau_low"] >= target:
            return r, None
    parts = []
    complete = [r for _, r in order if r["complete"]]
    with_interval = [r for r in complete if r["tau_low"] is not None]
    if with_interval:
        best = max(with_interval, key=lambda r: (r["tau_low"], r["kendall_tau"]))
        text = (
            f"the best complete rung, {best['rung']}, has Kendall tau {best['kendall_tau']:+.2f} "
            f"but a 90% lower bound of {best['tau_low']:+.2f}, below the target {target:.2f}"
        )
        need = candidates_needed(best["kendall_tau"], target)
        if need is not None:
            text += (
                f"; were tau to hold, about {need} candidates would lift the lower bound to "
                f"the target: a new fidelity study, --panel {need} with another --study (this "
                "study's panel is pinned)"
            )
        else:
            text += (  # the interval is wide on a small panel: the true tau may be higher
                "; its tau itself is not above the target, so a larger panel would reach it only "
                f"if the true tau is higher than this panel's (its interval spans "
                f"{best['tau_low']:+.2f} to {best['tau_high']:+.2f})"
            )
        parts.append(text)
    elif complete:
        parts.append(
            f"no complete rung has a tau interval (it needs a defined tau and at least 5 "
            f"candidates; the panel has {panel})"
        )
    else:
        parts.append("no rung is complete")
    incomplete = [r for _, r in order if not r["complete"]]
    if incomplete:
        listed = ", ".join(f"{r['rung']} ({_done(r, panel)})" for r in incomplete)
        parts.append(f"incomplete: {listed}; run the same command again to finish")
    return None, "undecided: " + "; ".join(parts)


def _done(entry: dict[str, Any], panel: int) -> str:
    return f"{entry['trained']} trained, {entry['failed']} failed of {panel}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _study_lines(rung: dict[str, Any], settings: FidelitySettings) -> str:
    subset = rung["subset"]
    return (
        "[search]\n"
        f"proxy_epochs = {rung['epochs']}\n"
        f"proxy_subset = {subset if subset is not None else json.dumps('all')}\n"
        f"proxy_val = {settings.val}\n"
        + (f'proxy_recipe = "{rung["recipe"]}"\n' if rung["recipe"] != DEFAULT_PROXY_RECIPE else "")
    )
