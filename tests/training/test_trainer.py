from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from nas.data import load_dataset, proxy_split
from nas.errors import NasError
from nas.models import build_model
from nas.training import Recipe, Trainer, TrainingFailed, full_recipe, proxy_recipe
from nas.training.trainer import lr_at
from tests.conftest import small_config


def make_trainer(folder: Path, recipe: Recipe, seed: int = 0, **kw: object) -> Trainer:
    data = load_dataset("imagefolder", folder)
    split = proxy_split(len(data.train_y), None, None)
    mean, std = data.mean_std()
    torch.manual_seed(seed)
    model = build_model(small_config(input_size=16, num_classes=3))
    return Trainer(
        model,
        recipe,
        train_x=data.train_x[split.train],
        train_y=data.train_y[split.train],
        eval_x=data.test_x,
        eval_y=data.test_y,
        mean=mean,
        std=std,
        device=torch.device("cpu"),
        seed=seed,
        **kw,
    )  # type: ignore[arg-type]


def test_training_is_deterministic_and_learns(image_folder: Path) -> None:
    recipe = proxy_recipe(3).replace(batch_size=16, lr=0.1)
    a = make_trainer(image_folder, recipe).fit()
    b = make_trainer(image_folder, recipe).fit()
    assert a.curve == b.curve
    assert a.curve[-1] > 0.6  # three classes, chance is 1/3
    assert a.images == 3 * 108 and a.images_per_s > 0


def test_nan_loss_fails_with_a_reason(image_folder: Path) -> None:
    with pytest.raises(TrainingFailed, match="loss became nan in epoch 1"):
        make_trainer(image_folder, proxy_recipe(1), fault="nan").fit()


def test_out_of_memory_fails_with_a_reason(image_folder: Path) -> None:
    with pytest.raises(TrainingFailed, match="out of memory on cpu at batch size 256"):
        make_trainer(image_folder, proxy_recipe(1), fault="oom").fit()


def test_schedule_warms_up_then_decays() -> None:
    r = Recipe(epochs=1, lr=1.0, warmup=0.1, schedule="cosine")
    lrs = [lr_at(s, 100, r) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] < 0.01
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))


def test_full_recipe_is_seed_001s() -> None:
    r = full_recipe(10)
    assert (r.momentum, r.nesterov, r.weight_decay, r.label_smoothing, r.schedule) == (
        0.9,
        True,
        5e-4,
        0.1,
        "cosine",
    )
    assert r.mixup_alpha > 0 and r.cutmix_alpha > 0 and r.ema_decay == 0.999 and r.grad_clip


def test_bad_recipe_values_are_user_errors() -> None:
    with pytest.raises(NasError, match="epochs must be at least 1"):
        Recipe(epochs=0)
    with pytest.raises(NasError, match="schedule must be"):
        Recipe(epochs=1, schedule="step")


def test_checkpoint_resume_continues_where_it_stopped(image_folder: Path, tmp_path: Path) -> None:
    recipe = full_recipe(3).replace(batch_size=16)
    ckpt = tmp_path / "ckpt.pt"
    straight = make_trainer(image_folder, recipe).fit()

    class Kill(Exception):
        pass

    def die_after_two(e: object) -> None:
        if getattr(e, "epoch", 0) == 2:
            raise Kill

    with pytest.raises(Kill):
        make_trainer(image_folder, recipe, checkpoint=ckpt).fit(die_after_two)
    assert ckpt.exists()
    resumed = make_trainer(image_folder, recipe, checkpoint=ckpt).fit()
    assert resumed.resumed_from == 2
    assert resumed.curve == pytest.approx(straight.curve)
    with pytest.raises(NasError, match="other training settings"):
        make_trainer(image_folder, recipe.replace(lr=0.5), checkpoint=ckpt).fit()
