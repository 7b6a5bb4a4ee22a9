"""The ``nas fidelity`` summary on made-up studies written the way the panel writes them:
failed candidates rank last, incomplete rungs are never recommended, the recommendation
needs the interval's lower end at the target, early epochs are ranked, cost is work."""

from __future__ import annotations

import json
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.fidelity import panel as panel_module
from nas.fidelity.ladder import Rung
from nas.fidelity.panel import FidelitySettings
from nas.fidelity.summary import summarize
from nas.proxy.ranking import candidates_needed
from tests.conftest import AGREEMENT_KEYS

AVAILABLE = 900  # training images outside the validation split
REFERENCE = Rung(10, None)  # 10 x 900 = 9000 images
FAILED = "failed"
STALE = "stale"  # a FAIL trial of a dead worker, not a training failure: the job is open


Job = list[float] | str  # a curve (accuracy per epoch), FAILED or STALE


def _settings(n: int, *ladder: Rung, target: float = 0.6) -> FidelitySettings:
    return FidelitySettings(panel=n, ladder=ladder, reference=REFERENCE, target_tau=target)


def _study(
    n: int,
    jobs: dict[str, dict[int, Job]],
    *,
    params: list[int] | None = None,
    zero_cost: list[dict[str, float | None]] | None = None,
    seconds: float = 2.0,
) -> optuna.Study:
    """A study as :class:`~nas.fidelity.panel.FidelityRun` leaves it: the ``panel`` and
    ``fidelity_settings`` user attributes, one trial per finished job."""
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(), study_name="fid", direction="maximize"
    )
    sizes = params or [1000 * 2**i for i in range(n)]  # no two within 1.5x
    study.set_user_attr(
        "panel",
        [
            {
                "arch": {},
                "summary": f"candidate {i}",
                "params": sizes[i],
                "flops": 10 * sizes[i],
                "zero_cost": {"params": sizes[i], "seconds": 0.1}
                | (zero_cost[i] if zero_cost else {}),
            }
            for i in range(n)
        ],
    )
    study.set_user_attr("fidelity_settings", {"panel": n, "seed": 0})
    for rung, done in jobs.items():
        for candidate, job in done.items():
            attrs: dict[str, Any] = {"candidate": candidate, "rung": rung}
            if job == FAILED:
                attrs |= {"fail_reason": "loss is nan", "training_failed": True}
                study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
            elif job == STALE:
                study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
            else:
                assert isinstance(job, list)
                attrs |= {"accuracy": job[-1], "seconds": seconds, "worker": "w", "curve": job}
                study.add_trial(
                    create_trial(state=TrialState.COMPLETE, value=job[-1], user_attrs=attrs)
                )
    return study


def _ranked(n: int, epochs: int = 1, order: list[int] | None = None) -> dict[int, Job]:
    """Candidate i gets accuracy rank ``order[i]`` (default i: the reference's order)."""
    order = order or list(range(n))
    return {i: [0.1 + 0.05 * order[i]] * epochs for i in range(n)}


def test_every_agreement_carries_every_key() -> None:
    n = 6
    study = _study(n, {"1x100": _ranked(n), "3x200": _ranked(n, 3), "10xall": _ranked(n)})
    result = summarize(study, _settings(n, Rung(1, 100), Rung(3, 200)), AVAILABLE)
    objects = [*result["rungs"], *result["zero_cost"].values()]
    objects += [p for r in result["rungs"] for p in r["partial"]]
    assert len(objects) == 2 + 1 + 2
    for a in objects:
        assert set(a) >= AGREEMENT_KEYS
    for r in result["rungs"]:
        assert {"trained", "failed", "complete", "cost_share", "seconds", "partial"} <= set(r)
    assert summarize is panel_module.summarize  # FidelityRun.summary calls this one
    json.dumps(result)  # plain JSON: no numpy numbers


def test_a_failed_candidate_ranks_last_at_the_rung() -> None:
    """Candidates 0-4 in the reference's order at 1x100, candidate 5 (the reference's best)
    failed there: it ranks last, so its 5 pairs disagree and the other 10 agree:
    tau = (10 - 5) / 15 = 1/3 over all 6 (dropping it would give 1 over 5)."""
    n = 6
    rung = _ranked(n)
    rung[5] = FAILED
    study = _study(n, {"1x100": rung, "10xall": _ranked(n)})
    r = summarize(study, _settings(n, Rung(1, 100)), AVAILABLE)["rungs"][0]
    assert (r["n"], r["trained"], r["failed"], r["complete"]) == (6, 5, 1, True)
    assert r["kendall_tau"] == pytest.approx(1 / 3)


def test_a_candidate_failed_at_the_reference_ranks_last_there() -> None:
    """Reference order 0 < 1 < 3 < 4 < 5 with candidate 2 failed (last); the rung ranks
    0 < 1 < ... < 5: pairs (0,2) and (1,2) disagree, 13 agree: tau = 11/15."""
    n = 6
    reference = _ranked(n)
    reference[2] = FAILED
    study = _study(n, {"1x100": _ranked(n), "10xall": reference})
    result = summarize(study, _settings(n, Rung(1, 100)), AVAILABLE)
    assert result["reference"]["failed"] == 1 and result["reference"]["complete"]
    assert result["rungs"][0]["n"] == 6
    assert result["rungs"][0]["kendall_tau"] == pytest.approx(11 / 15)


def test_an_incomplete_rung_is_never_recommended_even_at_tau_one() -> None:
    """12 candidates: 1x100 ranks its 11 trained ones perfectly (lower bound ~0.96, above
    0.6) but one job is open, and a stale worker's FAIL trial does not close it; the
    complete 3x200 is recommended although it costs more."""
    n = 12
    cheap = _ranked(n)
    cheap[11] = STALE
    jobs = {"1x100": cheap, "3x200": _ranked(n, 3), "10xall": _ranked(n)}
    result = summarize(_study(n, jobs), _settings(n, Rung(1, 100), Rung(3, 200)), AVAILABLE)
    first = result["rungs"][0]
    assert (first["trained"], first["failed"], first["complete"], first["n"]) == (11, 0, False, 11)
    assert first["kendall_tau"] == pytest.approx(1.0) and first["tau_low"] > 0.6
    assert result["recommended"] == "3x200" and result["reason"] is None
    assert result["study_file"] == (
        "[search]\nproxy_epochs = 3\nproxy_subset = 200\nproxy_val = 2000\n"
    )

    del jobs["3x200"][4]  # now no rung is complete
    result = summarize(_study(n, jobs), _settings(n, Rung(1, 100), Rung(3, 200)), AVAILABLE)
    assert result["recommended"] is None and result["study_file"] is None
    assert result["reason"].startswith("undecided:")
    assert "1x100 (11 trained, 0 failed of 12)" in result["reason"]
    assert "3x200 (11 trained, 0 failed of 12)" in result["reason"]


def test_an_incomplete_reference_gives_no_recommendation() -> None:
    n = 6
    reference = _ranked(n)
    del reference[0]
    study = _study(n, {"1x100": _ranked(n), "10xall": reference})
    result = summarize(study, _settings(n, Rung(1, 100), target=0.1), AVAILABLE)
    assert result["recommended"] is None
    assert result["reference"]["complete"] is False
    assert "reference 10xall is incomplete" in result["reason"]
    assert result["rungs"][0]["n"] == 5  # the candidates done at both


def test_a_low_lower_bound_leaves_the_choice_undecided() -> None:
    """6 candidates, one adjacent swap: tau = 13/15 = 0.87 > 0.6, but the lower end
    tanh(ln(14)/2 - 1.645 sqrt(0.437/2)) = 0.50 is below it; about 8 candidates would do."""
    n = 6
    study = _study(n, {"1x100": _ranked(n, order=[0, 1, 3, 2, 4, 5]), "10xall": _ranked(n)})
    result = summarize(study, _settings(n, Rung(1, 100)), AVAILABLE)
    r = result["rungs"][0]
    assert r["complete"] and r["kendall_tau"] == pytest.approx(13 / 15)
    assert r["tau_low"] == pytest.approx(0.50096, abs=1e-5)  # tanh(1.319529 - 0.768939)
    assert result["recommended"] is None and result["study_file"] is None
    assert result["reason"].startswith("undecided:")
    assert "1x100" in result["reason"] and "+0.87" in result["reason"]
    assert "+0.50" in result["reason"]
    assert candidates_needed(13 / 15, 0.6) == 8
    assert "about 8 candidates" in result["reason"]
    # the advice must be one that runs: --panel is pinned on this study, so a new one
    assert "--panel 8 with another --study" in result["reason"]


def test_a_tau_below_the_target_says_what_a_larger_panel_could_and_could_not_show() -> None:
    """6 candidates, tau 0.47 against a target of 0.6: were this tau the true one, no panel
    reaches the target, but a 6-candidate interval is wide, so the advice says both (it
    said that a larger panel would not help)."""
    n = 6
    study = _study(n, {"1x100": _ranked(n, order=[3, 0, 1, 2, 5, 4]), "10xall": _ranked(n)})
    result = summarize(study, _settings(n, Rung(1, 100)), AVAILABLE)
    r = result["rungs"][0]
    assert r["kendall_tau"] < 0.6 and r["tau_high"] > 0.6
    assert result["reason"].endswith(
        "its tau itself is not above the target, so a larger panel would reach it only if the "
        f"true tau is higher than this panel's (its interval spans {r['tau_low']:+.2f} to "
        f"{r['tau_high']:+.2f})"
    )


def test_a_three_epoch_rung_ranks_its_early_epochs() -> None:
    """3x200: after epoch 1 the order is reversed (tau -1), after epoch 2 one pair is
    swapped (13/15), at the end it is the reference's (1)."""
    n = 6
    curves: dict[int, Job] = {}
    swapped = [0, 1, 3, 2, 4, 5]
    for i in range(n):
        curves[i] = [0.5 - 0.05 * i, 0.1 + 0.05 * swapped[i], 0.2 + 0.05 * i]
    study = _study(n, {"1x100": _ranked(n), "3x200": curves, "10xall": _ranked(n)})
    result = summarize(study, _settings(n, Rung(1, 100), Rung(3, 200)), AVAILABLE)
    one, three = result["rungs"]
    assert one["partial"] == []
    assert [p["at_epoch"] for p in three["partial"]] == [1, 2]
    first, second = three["partial"]
    assert first["kendall_tau"] == pytest.approx(-1.0)
    assert second["kendall_tau"] == pytest.approx(13 / 15)
    assert three["kendall_tau"] == pytest.approx(1.0)
    assert first["cost_share"] == pytest.approx(200 / 9000)
    assert second["cost_share"] == pytest.approx(400 / 9000)
    assert first["mean_accuracy"] == pytest.approx(sum(0.5 - 0.05 * i for i in range(n)) / n)
    assert set(first) >= AGREEMENT_KEYS and first["n"] == n


def test_cost_share_is_training_work_not_seconds() -> None:
    """1x100: 100 images, 3x200: 600, 2xall: 2 x 900 = 1800, against 10 x 900 = 9000; every
    job took the same 5 seconds, so a seconds share would be 1/3 of the reference's jobs."""
    n = 3
    jobs = {"1x100": _ranked(n), "3x200": _ranked(n, 3), "2xall": _ranked(n, 2)}
    jobs["10xall"] = _ranked(n)
    settings = _settings(n, Rung(1, 100), Rung(3, 200), Rung(2, None))
    result = summarize(_study(n, jobs, seconds=5.0), settings, AVAILABLE)
    shares = [r["cost_share"] for r in result["rungs"]]
    assert shares == pytest.approx([100 / 9000, 600 / 9000, 0.2])
    assert [r["seconds"] for r in result["rungs"]] == [15.0, 15.0, 15.0]
    assert result["reference"]["seconds"] == 15.0 and result["reference"]["cost_share"] == 1.0


def test_same_size_agreement_uses_the_panel_params() -> None:
    """Params 1000, 1200, 5000, 5500, 30000, 70000: pairs (0,1) and (2,3) are within 1.5x.
    The rung swaps 2 and 3 and ranks 5 first: same-size tau (1 - 1) / 2 = 0."""
    n = 6
    params = [1000, 1200, 5000, 5500, 30000, 70000]
    rung = _ranked(n, order=[1, 2, 4, 3, 5, 0])
    study = _study(n, {"1x100": rung, "10xall": _ranked(n)}, params=params)
    r = summarize(study, _settings(n, Rung(1, 100)), AVAILABLE)["rungs"][0]
    assert r["same_size_pairs"] == 2
    assert r["same_size_tau"] == pytest.approx(0.0)


def test_zero_cost_scores_rank_non_finite_last_over_the_whole_panel() -> None:
    """naswot is None (non-finite) for candidate 5, the reference's best: it ranks last, so
    5 of 15 pairs disagree: tau 1/3 over all 6. ``seconds`` is not a score."""
    n = 6
    scores: list[dict[str, float | None]] = [{"naswot": float(i)} for i in range(n)]
    scores[5] = {"naswot": None}
    study = _study(n, {"1x100": _ranked(n), "10xall": _ranked(n)}, zero_cost=scores)
    zero_cost = summarize(study, _settings(n, Rung(1, 100)), AVAILABLE)["zero_cost"]
    assert set(zero_cost) == {"naswot", "params"}
    assert zero_cost["naswot"]["n"] == n
    assert zero_cost["naswot"]["kendall_tau"] == pytest.approx(1 / 3)
    assert zero_cost["params"]["kendall_tau"] == pytest.approx(1.0)  # 1000 * 2**i
    assert zero_cost["params"]["same_size_pairs"] == 0
