"""optuna-dashboard on a study storage, with the report's figures and winner notes attached."""

from __future__ import annotations

import hashlib
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


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def save_generated_note(study: optuna.Study, trial: FrozenTrial | None, body: str) -> bool:
    """Write the generated note ``body`` on ``trial`` (None: on the study), unless someone
    edited the note in the dashboard since nas last wrote it: a note that is neither empty
    nor the one nas wrote is the user's and is kept. Returns whether it was written."""
    from optuna_dashboard import save_note
    from optuna_dashboard._note import get_note_from_system_attrs

    trial_id = trial._trial_id if trial is not None else None
    storage = study._storage
    attrs = storage.get_study_system_attrs(study._study_id)
    current = get_note_from_system_attrs(attrs, trial_id)["body"]
    key = f"nas:generated_note:{'study' if trial_id is None else trial_id}"
    if current and _sha1(current) != attrs.get(key):
        return False  # edited by a person: theirs now
    if current != body:
        target = study if trial is None else optuna.trial.Trial(study, trial._trial_id)
        save_note(target, body)
    storage.set_study_system_attr(study._study_id, key, _sha1(body))
    return True


def annotate(study: optuna.Study) -> tuple[list[str], list[int], int]:
    """Attach the report's figures and a note per winner (Pareto trials and fully trained
    ones) to ``study``; returns the figure ids, the noted trial numbers and how many notes
    were kept because someone edited them in the dashboard."""
    from nas.report import attach_to_dashboard, winners

    figures = attach_to_dashboard(study)
    noted = winners(study)
    kept = sum(not save_generated_note(study, trial, winner_note(trial)) for trial in noted)
    fidelity = study.user_attrs.get("proxy_fidelity")
    if fidelity:
        body = textwrap.dedent(f"""\
            ## Proxy fidelity
            Between proxy accuracy and validation accuracy after full training:
            **{fidelity_text(fidelity)}**.
            """)
        kept += not save_generated_note(study, None, body)
    return figures, sorted(t.number for t in noted), kept
