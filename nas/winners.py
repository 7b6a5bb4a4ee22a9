"""Pareto winners: pick them, train them for real, write the results back to the study.

Each winner is trained on the whole training split with a full recipe (seed 001's by
default) and scored on the **test** split with its EMA weights. A checkpoint is written after
every epoch; re-running continues from it. The results become user attributes of the source
trial (``full_accuracy``, ``full_epochs``, ``checkpoint``, ``full_curve``, ...), and the
study records how well proxy accuracy predicted full accuracy (Kendall's tau).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from nas.config import ArchConfig
from nas.data import ImageData
from nas.errors import DataError, NasError
from nas.models import build_model
from nas.search.stats import (
    ProxyFidelity,
    accuracy_of,
    pareto_fronts,
    proxy_fidelity,
    second_objective,
)
from nas.search.storage import rdb_storage, set_result_attrs
from nas.training import EpochResult, Recipe, Trainer


def trained_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials with a proxy accuracy; refuses a study without any."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if accuracy_of(t) is not None and "arch" in t.user_attrs
    ]
    if not done:
        raise NasError(f"study {study.study_name!r} has no trained trial yet; run nas search first")
    return done


def select_winners(study: optuna.Study, top_k: int | None) -> list[FrozenTrial]:
    """The Pareto-optimal trained trials (accuracy vs the study's second objective), best
    proxy accuracy first. With ``top_k``, the K best of them; when the front holds fewer
    than K trials, the next fronts (non-dominated sorting) fill up the K."""
    fronts = pareto_fronts(trained_trials(study), second_objective(study))
    if not top_k:
        fronts = fronts[:1]
    ranked = [t for front in fronts for t in sorted(front, key=lambda t: -(accuracy_of(t) or 0))]
    return ranked[:top_k] if top_k else ranked


@dataclass
class WinnerResult:
    """One fully trained winner."""

    trial: int
    proxy_accuracy: float
    full_accuracy: float
    epochs: int
    seconds: float
    checkpoint: Path
    resumed_from: int


def train_winner(
    study: optuna.Study,
    trial: FrozenTrial,
    data: ImageData,
    recipe: Recipe,
    *,
    device: torch.device,
    seed: int,
    out_dir: Path,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> WinnerResult:
    """Train ``trial``'s architecture with ``recipe`` on all training images, score it on the
    test images, checkpoint every epoch, and record the result on the trial."""
    if not data.has_test:
        raise DataError(
            "the data set has no test split (DIR/test or DIR/val); "
            "train-winners scores the winners on it"
        )
    arch = ArchConfig.from_dict(trial.user_attrs["arch"])
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
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasError(f"cannot create {out_dir}: {exc.strerror}") from None
    checkpoint = out_dir / f"trial-{trial.number}.pt"
    torch.manual_seed(seed + trial.number)
    mean, std = data.mean_std()
    trainer = Trainer(
        build_model(arch),
        recipe,
        train_x=data.train_x,
        train_y=data.train_y,
        eval_x=data.test_x,
        eval_y=data.test_y,
        mean=mean,
        std=std,
        device=device,
        seed=seed + trial.number,
        checkpoint=checkpoint,
    )
    started = time.perf_counter()
    result = trainer.fit(on_epoch)
    weights = out_dir / f"trial-{trial.number}-weights.pt"
    torch.save(trainer.final_weights(), weights)
    proxy = accuracy_of(trial) or 0.0
    set_result_attrs(
        rdb_storage(study),
        trial._trial_id,
        {
            "full_accuracy": result.accuracy,
            "full_epochs": recipe.epochs,
            "full_curve": result.curve,
            "full_seconds": result.train_seconds,
            "full_recipe": recipe.to_dict(),
            "full_device": str(device),
            "checkpoint": str(checkpoint.resolve()),
            "weights": str(weights.resolve()),
        },
    )
    return WinnerResult(
        trial.number,
        proxy,
        result.accuracy,
        recipe.epochs,
        time.perf_counter() - started,
        checkpoint,
        result.resumed_from,
    )


def record_fidelity(study_name: str, storage: RDBStorage) -> ProxyFidelity:
    """Kendall's tau between proxy and full accuracy over every fully trained trial,
    stored as the study's user attribute ``proxy_fidelity``."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    fidelity = proxy_fidelity(study.get_trials(deepcopy=False))
    study.set_user_attr("proxy_fidelity", fidelity)
    return fidelity
