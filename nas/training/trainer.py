"""The one training loop, for proxies and full training alike.

The training images live on the device as one uint8 tensor; each epoch they are cropped and
flipped in one pass on the device, and every step slices a batch, normalises it and runs
SGD with the learning rate set explicitly for that step (airbench style). On CUDA it trains
in channels_last with bf16 autocast. Optional per recipe: mixup/cutmix, gradient clipping,
an EMA of the weights, and a checkpoint after every epoch that a re-run resumes from.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import os
import random
import re
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
from nas.files import read_torch
from nas.training.mixing import mix_batch
from nas.training.progress import StepProgress
from nas.training.recipe import SCHEDULES, Recipe
from nas.units import human_bytes

#: Test hook: ``NAS_SLOW_EPOCH=SEC`` sleeps SEC seconds at the start of every epoch, so
#: tests can interrupt or kill a run in the middle of an epoch.
SLOW_ENV = "NAS_SLOW_EPOCH"
#: Version of the checkpoint layout; a checkpoint of another layout is refused, not misread.
CHECKPOINT_FORMAT = 2


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
            f"--device {name} was asked for, but no CUDA GPU is available; use --device cpu"
        )
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NasError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise NasError(
            f"--device {name} was asked for, but this machine has "
            f"{torch.cuda.device_count()} CUDA GPU(s), numbered from cuda:0"
        )
    return device


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


def ema_factor(decay: float, updates: int) -> float:
    """The EMA's decay for the update that follows ``updates`` earlier ones: 0 for the first
    (the average starts as a copy of the weights), then min(decay, (1 + n) / (10 + n)), so a
    short run's average is not stuck near its first weights."""
    if updates == 0:
        return 0.0
    return min(decay, (1 + updates) / (10 + updates))


class WeightEMA:
    """Exponential moving average of a model's weights and floating-point buffers (BN
    statistics); integer buffers (BN's batch counters) are copied.

    The number of updates is a Python integer, so an update never reads a device value back
    to the host.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @staticmethod
    def _tensors(model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
        items = [*model.parameters(), *model.buffers()]
        return [t for t in items if t.is_floating_point()], [
            t for t in items if not t.is_floating_point()
        ]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        d = ema_factor(self.decay, self.updates)
        avg_float, avg_int = self._tensors(self.module)
        cur_float, cur_int = self._tensors(model)
        torch._foreach_lerp_(avg_float, [t.detach() for t in cur_float], 1.0 - d)
        for a, c in zip(avg_int, cur_int, strict=True):
            a.copy_(c)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def release_memory(device: torch.device) -> None:
    """Collect what a failed run left behind and give cached device memory back, so that
    the next candidate does not run out of memory too."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _asked_for(exc: BaseException) -> str:
    """What an out-of-memory error asked for, in words (``tried to allocate 33.6 GB``),
    else its first line, shortened."""
    text = str(exc).strip()
    found = re.search(r"tried to allocate (\d+) bytes", text, re.IGNORECASE)
    if found:  # the CPU allocator counts bytes
        return f"tried to allocate {human_bytes(int(found.group(1)))}"
    found = re.search(r"tried to allocate ([\d.]+ ?[KMGT]i?B)", text, re.IGNORECASE)
    if found:  # CUDA's caching allocator says it in MiB or GiB
        return f"tried to allocate {found.group(1)}"
    first = text.splitlines()[0] if text else "out of memory"
    return first if len(first) <= 160 else first[:159] + "…"


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator failing to allocate."""
    text = str(exc)
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in text


def memory_format(device: torch.device) -> torch.memory_format:
    """How a network and its batches lie in memory on ``device``: channels_last on CUDA
    (tensor cores), contiguous on the CPU. Batches must match the network's format: a
    channels_last batch through a contiguous network on the CPU (images decoded as
    height x width x channels are such a view) corrupted memory in torch 2.14's backward."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


class Trainer:
    """Trains ``model`` on ``train_x[train_idx]`` and scores it on ``eval_x`` every epoch.

    Args:
        model: the network (moved to ``device``).
        recipe: how to train.
        train_x, train_y: all training images (uint8, N x C x H x W) and labels.
        eval_x, eval_y: the images and labels scored after every epoch (validation).
        mean, std: per-channel normalisation.
        num_classes: classes of the data set (not of the labels this subset happens to hold).
        device: where to train.
        data_seed: seeds the data order and all augmentation (crops, flips, mixup, cutmix),
            and nothing else: the weights are initialised by the caller. Two runs with one
            data seed see identical batches in identical order (common random numbers), so
            the difference between two candidates is theirs, not the luck of the draw.
        checkpoint: save a checkpoint here after every epoch and resume from it if present.
        fault: test hook, ``"nan"`` or ``"oom"``: simulate that failure at the first step;
            ``"oom-eval"``: the CPU allocator's failure when the validation images are scored.
        compile: train through ``torch.compile`` of the model (the first step compiles; the
            weights, checkpoints and evaluation are the plain model's).
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
        num_classes: int,
        device: torch.device,
        data_seed: int,
        checkpoint: Path | None = None,
        fault: str | None = None,
        compile: bool = False,
    ) -> None:
        self.recipe = recipe
        self.device = device
        self.cuda = device.type == "cuda"
        self.memory_format = memory_format(device)
        self.model = model.to(device).to(memory_format=self.memory_format)
        self.train_x = train_x.to(device, non_blocking=True)
        self.train_y = train_y.to(device, non_blocking=True)
        self.eval_x = eval_x.to(device, non_blocking=True)
        self.eval_y = eval_y.to(device, non_blocking=True)
        self.mean, self.std = mean.to(device), std.to(device)
        self.num_classes = num_classes
        self.seed = data_seed
        self.checkpoint = checkpoint
        self.fault = fault
        #: What the training steps call: the model, or its compiled form sharing its weights.
        self.train_forward: Callable[[Tensor], Tensor] = (
            torch.compile(self.model) if compile else self.model
        )
        self.generator = torch.Generator(device=device).manual_seed(data_seed)
        self.cpu_generator = torch.Generator().manual_seed(data_seed)
        self.rng = random.Random(data_seed)
        self.optimizer = torch.optim.SGD(
            _param_groups(self.model, recipe.weight_decay),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
        )
        self.ema = WeightEMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        n = len(self.train_y)
        if n == 0:
            raise TrainingFailed("there are no training images")
        #: Images per step: the recipe's, or all of them when there are fewer.
        self.batch_size = min(recipe.batch_size, n)
        # The last partial batch is dropped: a tiny batch gives a noisy step at full rate.
        self.steps_per_epoch = n // self.batch_size

    # ------------------------------------------------------------------ evaluation
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA; nothing on CPU."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def scored_model(self) -> nn.Module:
        """What is evaluated and exported: the EMA's weights if the recipe keeps one."""
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def evaluate(
        self, x: Tensor | None = None, y: Tensor | None = None, batch_size: int | None = None
    ) -> float:
        """Accuracy (a fraction) of :attr:`scored_model` on images ``x`` with labels ``y``
        (default: the evaluation images given to the trainer), in batches of the training
        batch size unless ``batch_size`` says otherwise: a forward pass without gradients
        needs less memory than the training step that fitted, whereas a fixed larger batch
        ran out of memory for attention over many positions (its score matrices grow with
        the batch) after the whole training had been spent."""
        batch_size = batch_size or self.batch_size
        if self.fault == "oom-eval":
            raise RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 33554432000 "
                "bytes. Error code 12 (Cannot allocate memory) (simulated)"
            )
        model = self.scored_model
        images = self.eval_x if x is None else x.to(self.device, non_blocking=True)
        labels = self.eval_y if y is None else y.to(self.device, non_blocking=True)
        was_training = model.training
        model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for i in range(0, len(labels), batch_size):
            xb = normalize(images[i : i + batch_size], self.mean, self.std)
            xb = xb.contiguous(memory_format=self.memory_format)
            with self.autocast():
                logits = model(xb)
                if self.recipe.flip_tta:
                    logits = logits.float() + model(xb.flip(3)).float()
                pred = logits.argmax(1)
            correct += (pred == labels[i : i + batch_size]).sum()
        model.train(was_training)
        return int(correct) / max(1, len(labels))

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
        bs = self.batch_size
        for s in range(self.steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs]
            yield x[idx], self.train_y[idx]

    def fit(
        self,
        on_epoch: Callable[[EpochResult], None] | None = None,
        on_progress: Callable[[StepProgress], None] | None = None,
    ) -> TrainResult:
        """Train for the recipe's epochs, calling ``on_epoch`` after each (it may raise
        :class:`StopTraining`) and ``on_progress`` after every step (cheap: no device
        synchronisation; the display throttles it).

        Raises:
            TrainingFailed: on a non-finite loss or when the device runs out of memory.
        """
        result = TrainResult()
        start_epoch = self._resume(result)
        started = time.perf_counter()
        total = self.recipe.epochs * self.steps_per_epoch
        out_of_memory: str | None = None
        doing = "training"
        try:
            for epoch in range(start_epoch, self.recipe.epochs):
                t0 = time.perf_counter()
                doing = "training"
                loss, seen = self._train_epoch(epoch, total, on_progress)
                train_s = time.perf_counter() - t0
                doing = "scoring the validation images"
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
            if not is_out_of_memory(exc):
                raise
            out_of_memory = (
                f"out of memory on {self.device} {doing} at batch size {self.batch_size} "
                f"({_asked_for(exc)})"
            )
        finally:
            result.seconds = time.perf_counter() - started
        if out_of_memory is not None:
            # Raised outside the except block: the new exception does not chain the old one,
            # whose traceback holds the batch and activations alive.
            self._release()
            raise TrainingFailed(out_of_memory)
        return result

    def _train_epoch(
        self, epoch: int, total: int, on_progress: Callable[[StepProgress], None] | None
    ) -> tuple[float, int]:
        model, opt, recipe = self.model, self.optimizer, self.recipe
        model.train()
        started = time.perf_counter()
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
                out = self.train_forward(x)
                loss = F.cross_entropy(out.float(), target, label_smoothing=recipe.label_smoothing)
            if self.fault == "nan" and step == 0:
                loss = loss * float("nan")
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            if self.ema is not None:
                self.ema.update(model)
            loss_sum += loss.detach() * len(yb)
            seen += len(yb)
            if s % 25 == 0 or s == self.steps_per_epoch - 1:
                self._check_finite(loss_sum, epoch, s)
            if on_progress is not None:
                on_progress(
                    StepProgress(
                        epoch + 1,
                        self.recipe.epochs,
                        s + 1,
                        self.steps_per_epoch,
                        seen,
                        time.perf_counter() - started,
                    )
                )
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
        release_memory(self.device)

    # ------------------------------------------------------------------ checkpoints
    def _state(self, epoch: int, result: TrainResult) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
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
            "format": CHECKPOINT_FORMAT,
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
        state = read_torch(
            self.checkpoint, "checkpoint", "delete it to train from the start", self.device
        )
        if state.get("format") != CHECKPOINT_FORMAT:
            raise NasError(
                f"checkpoint {self.checkpoint} was written by an earlier version of nas; "
                "delete it to train from the start"
            )
        if state.get("recipe") != self.recipe.to_dict() or state.get("seed") != self.seed:
            raise NasError(
                f"checkpoint {self.checkpoint} was written with other training settings; "
                "delete it or train with the same settings to resume"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
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
        return {k: v.detach().cpu() for k, v in self.scored_model.state_dict().items()}
