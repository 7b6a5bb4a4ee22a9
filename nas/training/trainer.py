"""The one training loop, for proxies and full training alike.

The training images live on the device as one uint8 tensor; each epoch they are cropped and
flipped in one pass on the device, and every step slices a batch, normalises it and runs
SGD with the learning rate set explicitly for that step (airbench style). On CUDA it trains
in channels_last with bf16 autocast. Optional per recipe: mixup/cutmix, gradient clipping,
an EMA of the weights, and a checkpoint after every epoch that a re-run resumes from.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.data.augment import normalize, random_crop, random_flip
from nas.errors import NasError
from nas.training.mixing import mix_batch
from nas.training.recipe import SCHEDULES, Recipe

#: Test hook: ``NAS_SLOW_EPOCH=SEC`` sleeps SEC seconds at the start of every epoch, so
#: tests can interrupt or kill a run in the middle of an epoch.
SLOW_ENV = "NAS_SLOW_EPOCH"


class TrainingFailed(NasError):
    """Training of one candidate failed (NaN loss, out of memory); the message says why."""


class StopTraining(Exception):
    """Raised by an epoch callback to stop early; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class EpochResult:
    """What one epoch did."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    seconds: float
    images_per_s: float


@dataclass
class TrainResult:
    """What a training run did: accuracy per epoch, time, throughput."""

    curve: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    train_seconds: float = 0.0
    images: int = 0
    resumed_from: int = 0

    @property
    def accuracy(self) -> float:
        return self.curve[-1] if self.curve else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.train_seconds if self.train_seconds else 0.0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NasError(
            "--device cuda was asked for, but no CUDA GPU is available; use --device cpu"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise NasError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only; not on BN, biases or scalar join gains."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(step: int, total: int, recipe: Recipe) -> float:
    """The learning rate of ``step`` (0-based) of ``total``: linear warm-up, then decay."""
    warm = int(total * recipe.warmup)
    if step < warm:
        return recipe.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return recipe.lr * SCHEDULES[recipe.schedule](progress)


TensorList = tuple[Tensor, ...] | list[Tensor]


def ema_update(decay: float) -> Callable[[TensorList, TensorList, Tensor | int], None]:
    """EMA step with warm-up: the decay is min(decay, (1 + n) / (10 + n)) after n updates,
    so a short run's average is not stuck near the initial weights. Integer buffers (BN's
    batch counters) are copied."""

    def update(averaged: TensorList, current: TensorList, n: Tensor | int) -> None:
        steps = int(n)
        d = min(decay, (1 + steps) / (10 + steps))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator failing to allocate."""
    text = str(exc)
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in text


class Trainer:
    """Trains ``model`` on ``train_x[train_idx]`` and scores it on ``eval_x`` every epoch.

    Args:
        model: the network (moved to ``device``).
        recipe: how to train.
        train_x, train_y: all training images (uint8, N x C x H x W) and labels.
        eval_x, eval_y: the images and labels scored after every epoch.
        mean, std: per-channel normalisation.
        device: where to train.
        seed: seeds weight init order, data order and augmentation.
        checkpoint: save a checkpoint here after every epoch and resume from it if present.
        fault: test hook, ``"nan"`` or ``"oom"``: simulate that failure at the first step.
    """

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        *,
        train_x: Tensor,
        train_y: Tensor,
        eval_x: Tensor,
        eval_y: Tensor,
        mean: Tensor,
        std: Tensor,
        device: torch.device,
        seed: int,
        checkpoint: Path | None = None,
        fault: str | None = None,
    ) -> None:
        self.recipe = recipe
        self.device = device
        self.cuda = device.type == "cuda"
        self.memory_format = torch.channels_last if self.cuda else torch.contiguous_format
        self.model = model.to(device).to(memory_format=self.memory_format)
        self.train_x = train_x.to(device, non_blocking=True)
        self.train_y = train_y.to(device, non_blocking=True)
        self.eval_x = eval_x.to(device, non_blocking=True)
        self.eval_y = eval_y.to(device, non_blocking=True)
        self.mean, self.std = mean.to(device), std.to(device)
        self.num_classes = int(max(int(train_y.max()), int(eval_y.max()) if len(eval_y) else 0)) + 1
        self.seed = seed
        self.checkpoint = checkpoint
        self.fault = fault
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.cpu_generator = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)
        self.optimizer = torch.optim.SGD(
            _param_groups(self.model, recipe.weight_decay),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
        )
        self.ema: torch.optim.swa_utils.AveragedModel | None = None
        if recipe.ema_decay is not None:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=ema_update(recipe.ema_decay), use_buffers=True
            )
        n = len(self.train_y)
        self.steps_per_epoch = n // recipe.batch_size + int(n % recipe.batch_size > 1)
        if self.steps_per_epoch == 0:
            raise TrainingFailed(f"{n} training images are fewer than one batch")

    # ------------------------------------------------------------------ evaluation
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA; nothing on CPU."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def evaluate(self, model: nn.Module | None = None, batch_size: int = 1000) -> float:
        """Accuracy (a fraction) of ``model`` (default: EMA if any, else the model) on the
        evaluation images."""
        model = model or self.ema or self.model
        was_training = model.training
        model.eval()
        correct = 0
        for i in range(0, len(self.eval_y), batch_size):
            x = normalize(self.eval_x[i : i + batch_size], self.mean, self.std)
            x = x.contiguous(memory_format=self.memory_format)
            with self.autocast():
                pred = model(x).argmax(1)
            correct += int((pred == self.eval_y[i : i + batch_size]).sum())
        model.train(was_training)
        return correct / max(1, len(self.eval_y))

    # ------------------------------------------------------------------ training
    def _epoch_images(self) -> Tensor:
        """The whole training tensor, cropped and flipped for one epoch (uint8)."""
        x = self.train_x
        if self.recipe.crop_padding:
            chunks = [
                random_crop(x[i : i + 8192], self.recipe.crop_padding, self.generator)
                for i in range(0, len(x), 8192)
            ]
            x = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
        if self.recipe.flip:
            x = random_flip(x, self.generator)
        return x

    def _batches(self, x: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(len(x), generator=self.cpu_generator).to(self.device)
        bs = self.recipe.batch_size
        for s in range(self.steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs]
            yield x[idx], self.train_y[idx]

    def fit(self, on_epoch: Callable[[EpochResult], None] | None = None) -> TrainResult:
        """Train for the recipe's epochs, calling ``on_epoch`` after each (it may raise
        :class:`StopTraining`).

        Raises:
            TrainingFailed: on a non-finite loss or when the device runs out of memory.
        """
        result = TrainResult()
        start_epoch = self._resume(result)
        started = time.perf_counter()
        total = self.recipe.epochs * self.steps_per_epoch
        try:
            for epoch in range(start_epoch, self.recipe.epochs):
                t0 = time.perf_counter()
                loss, seen = self._train_epoch(epoch, total)
                train_s = time.perf_counter() - t0
                accuracy = self.evaluate()
                result.curve.append(accuracy)
                result.losses.append(loss)
                result.images += seen
                result.train_seconds += train_s
                self._save(epoch, result)
                if on_epoch is not None:
                    on_epoch(
                        EpochResult(
                            epoch + 1,
                            self.recipe.epochs,
                            loss,
                            accuracy,
                            time.perf_counter() - t0,
                            seen / train_s,
                        )
                    )
        except RuntimeError as exc:
            if not _is_out_of_memory(exc):
                raise
            self._release()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
            raise TrainingFailed(
                f"out of memory on {self.device} at batch size {self.recipe.batch_size} "
                f"({first[:120]})"
            ) from None
        finally:
            result.seconds = time.perf_counter() - started
        return result

    def _train_epoch(self, epoch: int, total: int) -> tuple[float, int]:
        model, opt, recipe = self.model, self.optimizer, self.recipe
        model.train()
        slow = float(os.environ.get(SLOW_ENV) or 0)
        if slow:
            time.sleep(slow)
        loss_sum = torch.zeros((), device=self.device)
        seen = 0
        x_epoch = self._epoch_images()
        for s, (xb, yb) in enumerate(self._batches(x_epoch)):
            step = epoch * self.steps_per_epoch + s
            lr = lr_at(step, total, recipe)
            for group in opt.param_groups:
                group["lr"] = lr
            if self.fault == "oom" and step == 0:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated by NAS_INJECT_FAULT)")
            x = normalize(xb, self.mean, self.std).contiguous(memory_format=self.memory_format)
            target: Tensor = yb
            if recipe.mixup_alpha or recipe.cutmix_alpha:
                x, target = mix_batch(
                    x, yb, self.num_classes, recipe.mixup_alpha, recipe.cutmix_alpha, self.rng
                )
            with self.autocast():
                out = model(x)
                loss = F.cross_entropy(out.float(), target, label_smoothing=recipe.label_smoothing)
            if self.fault == "nan" and step == 0:
                loss = loss * float("nan")
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            if self.ema is not None:
                self.ema.update_parameters(model)
            loss_sum += loss.detach() * len(yb)
            seen += len(yb)
            if s % 25 == 0 or s == self.steps_per_epoch - 1:
                self._check_finite(loss_sum, epoch, s)
        return float(loss_sum) / max(1, seen), seen

    def _check_finite(self, loss_sum: Tensor, epoch: int, step: int) -> None:
        value = float(loss_sum)
        if not math.isfinite(value):
            raise TrainingFailed(
                f"loss became {value} in epoch {epoch + 1} by step {step + 1}; "
                f"the learning rate {self.recipe.lr} may be too high for this architecture"
            )

    def _release(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.cuda:
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ checkpoints
    def _state(self, epoch: int, result: TrainResult) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema_state": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "cpu_generator": self.cpu_generator.get_state(),
            "rng": self.rng.getstate(),
            "curve": list(result.curve),
            "losses": list(result.losses),
            "images": result.images,
            "train_seconds": result.train_seconds,
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
        }

    def _save(self, epoch: int, result: TrainResult) -> None:
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.{os.getpid()}.tmp")
        torch.save(self._state(epoch, result), tmp)
        tmp.replace(self.checkpoint)

    def _resume(self, result: TrainResult) -> int:
        """Load the checkpoint if there is one; returns the first epoch still to train."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return 0
        state = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        if state.get("recipe") != self.recipe.to_dict() or state.get("seed") != self.seed:
            raise NasError(
                f"checkpoint {self.checkpoint} was written with other training settings; "
                "delete it or train with the same settings to resume"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema_state") is not None:
            self.ema.load_state_dict(state["ema_state"])
        self.generator.set_state(state["generator"])
        self.cpu_generator.set_state(state["cpu_generator"])
        self.rng.setstate(state["rng"])
        result.curve = list(state["curve"])
        result.losses = list(state["losses"])
        result.images = int(state["images"])
        result.train_seconds = float(state["train_seconds"])
        result.resumed_from = int(state["epoch"]) + 1
        return result.resumed_from

    def final_weights(self) -> dict[str, Tensor]:
        """The weights to export: the EMA's if the recipe keeps one, else the model's."""
        model = self.ema.module if self.ema is not None else self.model
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
