from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
import torch

from nas.data import load_dataset, proxy_split
from nas.errors import NasError
from nas.models import build_model
from nas.training import Recipe, Trainer, TrainingFailed, full_recipe, proxy_recipe
from nas.training.trainer import lr_at
from tests.conftest import small_config


def make_trainer(
    folder: Path,
    recipe: Recipe,
    seed: int = 0,
    *,
    data_seed: int | None = None,
    stem_width: int = 8,
    cls: type[Trainer] = Trainer,
    **kw: object,
) -> Trainer:
    """A trainer of a tiny network on the image folder: weights from ``seed``, data order
    from ``data_seed`` (default: ``seed``)."""
    data = load_dataset("imagefolder", folder)
    split = proxy_split(len(data.train_y), None, None)
    mean, std = data.mean_std()
    torch.manual_seed(seed)
    model = build_model(small_config(stem_width=stem_width, input_size=16, num_classes=3))
    return cls(
        model,
        recipe,
        train_x=data.train_x[split.train],
        train_y=data.train_y[split.train],
        eval_x=data.test_x,
        eval_y=data.test_y,
        mean=mean,
        std=std,
        num_classes=data.num_classes,
        device=torch.device("cpu"),
        data_seed=seed if data_seed is None else data_seed,
        **kw,
    )  # type: ignore[arg-type]


def test_training_is_deterministic_and_learns(image_folder: Path) -> None:
    recipe = proxy_recipe(3).replace(batch_size=16, lr=0.1)
    a = make_trainer(image_folder, recipe).fit()
    b = make_trainer(image_folder, recipe).fit()
    assert a.curve == b.curve
    assert a.curve[-1] > 0.6  # three classes, chance is 1/3
    assert a.images == 3 * 96 and a.images_per_s > 0  # 108 images: 6 full batches of 16


def test_nan_loss_fails_with_a_reason(image_folder: Path) -> None:
    with pytest.raises(TrainingFailed, match="loss became nan in epoch 1"):
        make_trainer(image_folder, proxy_recipe(1).replace(batch_size=16), fault="nan").fit()


def test_out_of_memory_fails_with_a_reason(image_folder: Path) -> None:
    with pytest.raises(TrainingFailed, match="out of memory on cpu training at batch size 16"):
        make_trainer(image_folder, proxy_recipe(1).replace(batch_size=16), fault="oom").fit()


def test_out_of_memory_in_scoring_names_the_phase_and_the_size(image_folder: Path) -> None:
    """The CPU allocator counts bytes: cut at 120 characters, 33554432000 read as 32 MB,
    and the message blamed the training step."""
    recipe = proxy_recipe(1).replace(batch_size=16)
    with pytest.raises(TrainingFailed) as failed:
        make_trainer(image_folder, recipe, fault="oom-eval").fit()
    assert str(failed.value) == (
        "out of memory on cpu scoring the validation images at batch size 16 (tried to "
        "allocate 33.6 GB)"
    )


def test_the_validation_images_are_scored_in_training_batches(image_folder: Path) -> None:
    """Not 1000 at a time: attention over many positions holds batch x heads x N^2 scores,
    which a batch the training step fitted at does not exceed."""
    trainer = make_trainer(image_folder, proxy_recipe(1).replace(batch_size=16))
    seen: list[int] = []
    hook = trainer.scored_model.register_forward_pre_hook(lambda _, args: seen.append(len(args[0])))
    trainer.evaluate()
    hook.remove()
    assert seen and max(seen) == 16 and sum(seen) == len(trainer.eval_y)


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
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # cut short (a full disk, a bad copy)
    with pytest.raises(NasError) as damaged:
        make_trainer(image_folder, recipe, checkpoint=ckpt).fit()
    assert str(damaged.value).startswith(
        f"cannot read checkpoint {ckpt}: it is damaged or not a file torch saved ("
    )
    assert str(damaged.value).endswith("); delete it to train from the start")


class RecordingTrainer(Trainer):
    """Records a checksum of every batch it trains on (images and labels)."""

    def _batches(self, x: torch.Tensor):  # type: ignore[no-untyped-def, override]
        self.seen: list[tuple[int, tuple[int, ...]]] = getattr(self, "seen", [])
        for xb, yb in super()._batches(x):
            self.seen.append((int(xb.to(torch.int64).sum()), tuple(yb.tolist())))
            yield xb, yb


def _recording(folder: Path, recipe: Recipe, init: int, data_seed: int) -> RecordingTrainer:
    trainer = make_trainer(
        folder,
        recipe,
        init,
        data_seed=data_seed,
        stem_width=8 + 8 * init,  # a different architecture per init seed
        cls=RecordingTrainer,
    )
    assert isinstance(trainer, RecordingTrainer)
    return trainer


def test_one_data_seed_gives_every_model_the_same_batches(image_folder: Path) -> None:
    """Common random numbers: two different networks with one data seed train on identical
    (cropped, flipped, mixed) batches in identical order; another data seed changes them."""
    recipe = full_recipe(2).replace(batch_size=16)
    a = _recording(image_folder, recipe, init=0, data_seed=5)
    b = _recording(image_folder, recipe, init=1, data_seed=5)
    c = _recording(image_folder, recipe, init=0, data_seed=6)
    for t in (a, b, c):
        t.fit()
    assert len(a.seen) == 2 * 6 and a.seen == b.seen
    assert a.seen != c.seen


def test_a_rerun_is_bitwise_equal_on_cpu(image_folder: Path) -> None:
    recipe = full_recipe(2).replace(batch_size=16)
    runs = [make_trainer(image_folder, recipe, seed=3) for _ in range(2)]
    results = [t.fit() for t in runs]
    assert results[0].curve == results[1].curve and results[0].losses == results[1].losses
    first, second = (t.final_weights() for t in runs)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_class_count_comes_from_the_data_set_not_the_labels(image_folder: Path) -> None:
    """A subset without the last class, with mixup and cutmix: the targets still have one
    column per class of the data set (3), matching the network's outputs."""
    data = load_dataset("imagefolder", image_folder)
    keep = data.train_y < 2
    torch.manual_seed(0)
    trainer = Trainer(
        build_model(small_config(input_size=16, num_classes=3)),
        full_recipe(1).replace(batch_size=16),
        train_x=data.train_x[keep],
        train_y=data.train_y[keep],
        eval_x=data.test_x[data.test_y < 2],
        eval_y=data.test_y[data.test_y < 2],
        mean=torch.zeros(3),
        std=torch.ones(3),
        num_classes=data.num_classes,
        device=torch.device("cpu"),
        data_seed=0,
    )
    assert len(trainer.fit().curve) == 1


def test_out_of_memory_does_not_keep_the_failed_run_alive(image_folder: Path) -> None:
    """The failure does not chain the original error, whose traceback holds the batch."""
    with pytest.raises(TrainingFailed) as info:
        make_trainer(image_folder, proxy_recipe(1).replace(batch_size=16), fault="oom").fit()
    assert info.value.__context__ is None and info.value.__cause__ is None


class _Linear(torch.nn.Module):
    """Logits linear in the pixels: not mirror-symmetric, so flip TTA changes predictions."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(pixels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x.flatten(1))
        return out


def test_flip_tta_scores_the_mean_of_an_image_and_its_mirror(image_folder: Path) -> None:
    from nas.data.augment import normalize

    trainer = make_trainer(image_folder, proxy_recipe(1, "fast").replace(batch_size=16))
    assert trainer.recipe.flip_tta
    torch.manual_seed(3)
    trainer.model = _Linear(trainer.eval_x[0].numel())
    x = normalize(trainer.eval_x, trainer.mean, trainer.std)
    with torch.no_grad():
        tta = (trainer.model(x) + trainer.model(x.flip(3))).argmax(1)
        plain = trainer.model(x).argmax(1)
    assert not torch.equal(tta, plain)  # else this test could not tell them apart
    assert trainer.evaluate(trainer.eval_x, tta) == 1.0
    trainer.recipe = trainer.recipe.replace(flip_tta=False)
    assert trainer.evaluate(trainer.eval_x, tta) < 1.0


def test_proxy_recipes_by_name() -> None:
    from nas.search.settings import SearchSettings

    assert proxy_recipe(3) == Recipe(epochs=3)
    fast = proxy_recipe(3, "fast")
    assert (fast.label_smoothing, fast.crop_padding, fast.flip_tta) == (0.2, 2, True)
    with pytest.raises(NasError, match="unknown proxy recipe 'slow'"):
        proxy_recipe(3, "slow")
    with pytest.raises(NasError, match="unknown proxy recipe 'slow'; valid: standard, fast"):
        SearchSettings(proxy_recipe="slow")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_training_trains_the_same_model(image_folder: Path) -> None:
    """--compile trains through torch.compile; the plain model holds the trained weights (what
    checkpoints, evaluation and export read), close to an uncompiled run's."""
    recipe = proxy_recipe(1).replace(batch_size=16, lr=0.1)
    plain = make_trainer(image_folder, recipe)
    compiled = make_trainer(image_folder, recipe, compile=True)
    assert compiled.train_forward is not compiled.model and plain.train_forward is plain.model
    a, b = plain.fit(), compiled.fit()
    assert a.losses[0] == pytest.approx(b.losses[0], rel=1e-3)
    for (name, x), (_, y) in zip(
        plain.model.state_dict().items(), compiled.model.state_dict().items(), strict=True
    ):
        assert not name.startswith("_orig_mod")
        assert torch.allclose(x.float(), y.float(), atol=1e-3), name


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"label_smoothing": 1.5}, "label smoothing must be in [0, 1), got 1.5"),
        ({"momentum": -1.0}, "momentum must be in [0, 1), got -1.0"),
        ({"momentum": 2.0}, "momentum must be in [0, 1), got 2.0"),
        ({"weight_decay": -1.0}, "weight decay must be at least 0, got -1.0"),
        ({"mixup_alpha": -1.0}, "mixup alpha must be at least 0, got -1.0"),
        ({"cutmix_alpha": -1.0}, "cutmix alpha must be at least 0, got -1.0"),
        ({"lr": float("nan")}, "learning rate must be positive, got nan"),
    ],
)
def test_a_recipe_no_training_can_take_is_refused_when_made(
    change: dict[str, float], said: str
) -> None:
    """Before any training starts (torch refused label smoothing 1.5 and momentum -1 with a
    traceback mid-epoch; momentum 2 or a negative weight decay trained, and their results
    replaced the study's recorded full training)."""
    with pytest.raises(NasError) as refused:
        Recipe(epochs=1, **change)  # type: ignore[arg-type]
    assert str(refused.value) == said


def test_a_device_this_machine_lacks_is_named_as_given() -> None:
    """``--device cuda:1`` is refused as ``cuda:1``, not as ``cuda``; a GPU number past the
    machine's GPUs is refused before anything runs, not at the first tensor."""
    import pytest

    from nas.errors import NasError
    from nas.training import resolve_device

    if not torch.cuda.is_available():
        with pytest.raises(NasError, match=r"^--device cuda:1 was asked for, but no CUDA GPU"):
            resolve_device("cuda:1")
    past = f"cuda:{torch.cuda.device_count()}"
    if torch.cuda.is_available():
        with pytest.raises(NasError, match=rf"^--device {past} was asked for, but this machine"):
            resolve_device(past)
    with pytest.raises(NasError, match=r"^unknown device 'gpu'; use auto, cpu, cuda or cuda:N$"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu")
