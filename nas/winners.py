"""Pareto winners: pick them, train them for real, write the results back to the study.

Each winner is trained with a full recipe (seed 001's by default) on the training images
minus a held-out validation split (the study's ``val_fraction``, 10% by default: the same
images the proxy scored on, never trained on), scored on that split after every epoch, and
scored **once** on the test split at the end, with its EMA weights. Selection uses the
validation score only (``full_val_accuracy``); the test score (``full_accuracy``) is
reported, never used to choose. A checkpoint is written after every epoch; re-running
continues from it. The results become user attributes of the source trial, and the study
records how well proxy accuracy predicted the full validation accuracy (Kendall's tau).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from nas.config import ArchConfig
from nas.data import ImageData
from nas.errors import DataError, NasError
from nas.files import make_dir
from nas.proxy.context import full_context, init_seed, make_trainer
from nas.proxy.fidelity import ProxyFidelity, proxy_fidelity
from nas.study.record import StudyRecord, TrialRecord, full_results, no_results, write_results
from nas.study.stats import accuracy_of, pareto_fronts, study_costs, trained_trials
from nas.training import EpochResult, Recipe, StepProgress


def select_winners(study: optuna.Study, top_k: int | None) -> list[FrozenTrial]:
    """The Pareto-optimal trained trials (accuracy vs the study's other objectives), best
    proxy accuracy first; a candidate evaluated several times comes once, by its mean. With
    ``top_k``, the K best of them; when the front holds fewer than K trials, the next fronts
    (non-dominated sorting) fill up the K."""
    fronts = pareto_fronts(trained_trials(study), study_costs(study))
    if not top_k:
        fronts = fronts[:1]
    ranked = [t for front in fronts for t in front]  # each front most accurate (mean) first
    return ranked[:top_k] if top_k else ranked


def other_recipes(
    trials: Sequence[FrozenTrial], recipe: Recipe
) -> list[tuple[FrozenTrial, dict[str, Any]]]:
    """The fully trained ``trials`` whose recipe is not ``recipe``, each with the recipe
    fields that differ, as it had them: their full validation accuracies do not compare with
    this recipe's, and ``nas export --best`` chooses by them."""
    wanted = recipe.to_dict()
    out = []
    for t in trials:
        r = TrialRecord(t)
        if r.full_val_accuracy is None:
            continue
        had = r.full_recipe or {"epochs": r.full_epochs}  # older studies: the epochs only
        differ = {k: had[k] for k in wanted if k in had and had[k] != wanted[k]}
        if differ:
            out.append((t, differ))
    return out


def check_one_recipe(study: optuna.Study, recipe: Recipe, replace: bool) -> list[FrozenTrial]:
    """Keep a study's full-training results comparable: refuse a recipe other than the one
    its winners were fully trained with, unless ``replace``; returns the trials whose
    results ``replace`` is to forget (:func:`forget_results`, once the run has checked its
    data and output folder: a run refused there forgets nothing). Nothing is written here.

    Raises:
        NasError: in one line, naming the trials and what differs, unless ``replace``.
    """
    others = other_recipes(study.get_trials(deepcopy=False), recipe)
    if others and not replace:

        def words(fields: dict[str, Any]) -> str:
            return ", ".join(f"{k} {v}" for k, v in fields.items())

        had = "; ".join(f"trial {t.number}: {words(d)}" for t, d in others)
        differ = {k for _, d in others for k in d}
        now = words({k: v for k, v in recipe.to_dict().items() if k in differ})
        raise NasError(
            f"study {study.study_name!r} has winners fully trained with other settings "
            f"({had}; this run: {now}), and nas export --best compares their full validation "
            "accuracies: give the same settings, or --replace to forget those results and "
            "train with these"
        )
    return [t for t, _ in others]


def forget_results(study: optuna.Study, trials: Sequence[FrozenTrial], out_dir: Path) -> None:
    """Forget the full-training results of ``trials``: they read as never fully trained.
    Their files stay, except the checkpoint in ``out_dir`` that those results name: a run
    writing there starts that winner over instead of resuming from another recipe's (which
    the trainer refuses)."""
    for t in trials:
        recorded = TrialRecord(t).checkpoint
        write_results(study, t, no_results())
        here = checkpoint_path(out_dir, t.number)
        if recorded is not None and Path(recorded) == here.resolve():
            here.unlink(missing_ok=True)


def checkpoint_path(out_dir: Path, trial: int) -> Path:
    """Where full training checkpoints trial ``trial`` after every epoch."""
    return out_dir / f"trial-{trial}.pt"


@dataclass
class WinnerResult:
    """One fully trained winner."""

    trial: int
    proxy_accuracy: float
    val_accuracy: float
    full_accuracy: float
    epochs: int
    #: training time over every run that trained it (a resumed one adds to the first's)
    seconds: float
    checkpoint: Path
    resumed_from: int


def require_test_split(data: ImageData) -> None:
    """Refuse a data set without a test split: winners are scored on it once, at the end."""
    if not data.has_test:
        raise DataError(
            "the data set has no test split (DIR/test or DIR/val); "
            "train-winners scores the winners on it once, at the end"
        )


def train_winner(
    study: optuna.Study,
    trial: FrozenTrial,
    data: ImageData,
    recipe: Recipe,
    *,
    device: torch.device,
    seed: int,
    out_dir: Path,
    val_fraction: float = 0.1,
    on_epoch: Callable[[EpochResult], None] | None = None,
    on_progress: Callable[[StepProgress], None] | None = None,
    compile: bool = False,
) -> WinnerResult:
    """Train ``trial``'s architecture with ``recipe`` on the training images outside the
    validation split, score it on the validation split every epoch and on the test images
    once at the end, checkpoint every epoch, and record the result on the trial.

    Every winner of one ``seed`` sees the same batches in the same order; the weights are
    initialised from ``seed`` and the trial number."""
    require_test_split(data)
    arch = ArchConfig.from_dict(TrialRecord(trial).arch or {})
    if (arch.in_channels, arch.input_size, arch.num_classes) != (
        data.in_channels,
        data.input_size,
        data.num_classes,
    ):
        raise NasError(
            f"trial {trial.number} was searched on {arch.in_channels}x{arch.input_size}x"
            f"{arch.input_size} images with {arch.num_classes} classes, not this data set's "
            f"{data.in_channels}x{data.input_size}x{data.input_size} with {data.num_classes}"
        )
    make_dir(out_dir)
    checkpoint = checkpoint_path(out_dir, trial.number)
    ctx = full_context(data, recipe, device, seed, val_fraction)
    split = ctx.split
    trainer = make_trainer(
        ctx, arch, init_seed(seed, trial.number), checkpoint=checkpoint, compile=compile
    )
    result = trainer.fit(on_epoch, on_progress)
    test_accuracy = trainer.evaluate(data.test_x, data.test_y)  # the only look at the test split
    weights = out_dir / f"trial-{trial.number}-weights.pt"
    torch.save(trainer.final_weights(), weights)
    proxy = accuracy_of(trial) or 0.0
    write_results(
        study,
        trial,
        full_results(
            val_accuracy=result.accuracy,
            test_accuracy=test_accuracy,
            epochs=recipe.epochs,
            curve=result.curve,
            val_images=len(split.val),
            seconds=result.train_seconds,
            recipe=recipe.to_dict(),
            device=str(device),
            checkpoint=str(checkpoint.resolve()),
            weights=str(weights.resolve()),
            normalize={"mean": ctx.mean.tolist(), "std": ctx.std.tolist()},
        ),
    )
    return WinnerResult(
        trial.number,
        proxy,
        result.accuracy,
        test_accuracy,
        recipe.epochs,
        result.train_seconds,  # over every run that trained it, as full_seconds records
        checkpoint,
        result.resumed_from,
    )


def record_fidelity(study_name: str, storage: RDBStorage) -> ProxyFidelity:
    """Kendall's tau between proxy accuracy and full validation accuracy over every fully
    trained trial, stored as the study's user attribute ``proxy_fidelity``."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    fidelity = proxy_fidelity(study.get_trials(deepcopy=False))
    StudyRecord(study).set_proxy_fidelity(fidelity)
    return fidelity
