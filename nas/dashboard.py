"""optuna-dashboard on a study storage, with the report's figures and winner notes attached."""

from __future__ import annotations

import json
import textwrap

import optuna
from optuna.trial import FrozenTrial

from nas.config import ArchConfig
from nas.search.stats import accuracy_of, fidelity_text


def winner_note(trial: FrozenTrial) -> str:
    """Markdown note of a winner: its scores and its config."""
    arch = ArchConfig.from_dict(trial.user_attrs["arch"])
    full = trial.user_attrs.get("full_accuracy")
    val = trial.user_attrs.get("full_val_accuracy")
    lines = [
        f"## Trial {trial.number}: {arch.summary()}",
        "",
        f"* proxy validation accuracy: {accuracy_of(trial):.4f}",
        f"* after {trial.user_attrs.get('full_epochs')} full epochs: validation accuracy "
        f"{val:.4f} (selection uses this), test accuracy {full:.4f} (scored once)"
        if full is not None and val is not None
        else "* not fully trained yet (nas train-winners)",
        f"* params: {trial.user_attrs.get('params', 0):,}; "
        f"FLOPs: {trial.user_attrs.get('flops', 0):,}",
        "",
        "```json",
        json.dumps(arch.to_dict(), indent=2),
        "```",
    ]
    return "\n".join(lines)


def annotate(study: optuna.Study) -> tuple[list[str], list[int]]:
    """Attach the report's figures and a note per winner (Pareto trials and fully trained
    ones) to ``study``; returns the figure ids and the noted trial numbers."""
    from optuna_dashboard import save_note

    from nas.report import attach_to_dashboard, winners

    figures = attach_to_dashboard(study)
    noted = winners(study)
    for trial in noted:
        save_note(optuna.trial.Trial(study, trial._trial_id), winner_note(trial))
    fidelity = study.user_attrs.get("proxy_fidelity")
    if fidelity:
        save_note(
            study,
            textwrap.dedent(f"""\
            ## Proxy fidelity
            Between proxy accuracy and validation accuracy after full training:
            **{fidelity_text(fidelity)}**.
            """),
        )
    return figures, sorted(t.number for t in noted)
