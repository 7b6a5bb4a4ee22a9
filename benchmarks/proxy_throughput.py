"""Is the proxy trainer's input pipeline what limits it?

Per model, three arms train the same network (same initial weights, the search's SGD, the
search's batch size) and are timed on their training steps only, in images per second:

proxy
    the real ``nas.training.Trainer`` exactly as ``nas search`` builds it
    (``proxy_context`` + ``make_trainer``: the default proxy recipe, subset, batch size and
    scaled learning rate). Timed: one whole proxy epoch, as the trainer itself measures it
    (``EpochResult.images_per_s``: the epoch's crop/flip pass on the device, per-step
    slicing, normalisation, learning-rate setting, loss bookkeeping and finiteness checks,
    forward, backward, SGD step). Validation after the epoch is not timed.
ceiling
    a bare forward / backward / SGD-step loop over batches built before timing: cropped,
    flipped, normalised, in the trainer's memory format and already on the device. No data
    work at all; what is left is the network and the optimizer.
dataloader
    the usual ``torchvision.datasets`` loop: a Dataset over already-decoded uint8 arrays
    (numpy HWC, like ``torchvision.datasets.CIFAR10.data``; one PIL image per item, as
    torchvision does), ``RandomCrop(size, padding)``, ``RandomHorizontalFlip``, ``ToTensor``,
    ``Normalize`` with the trainer's mean and std, and ``DataLoader(shuffle=True,
    num_workers=W, pin_memory=<on CUDA>, persistent_workers=True, drop_last=True)``.

All three arms share the trainer's precision (bf16 autocast on CUDA, fp32 on CPU: the
trainer's own ``autocast()``), its memory format (channels_last on CUDA), its model and
optimizer construction (each arm gets its own ``make_trainer`` with the same seed), its loss
(cross-entropy with the recipe's label smoothing, on fp32 logits) and its batch size. Every
arm runs the same number of steps per epoch (subset // batch, the last partial batch
dropped).

Warm-up is not timed: before the first round every arm trains one whole untimed epoch (for the
proxy, the first epoch of its trainer; for the DataLoader, the epoch that starts its worker
processes, which then persist). Then each of ``--rounds`` rounds times ``--epochs`` epochs
of every arm, arms interleaved and their order rotated from round to round, so that drift
on a shared machine hits every arm alike. Reported: min / median / max images/s per arm,
and the per-round ratios proxy/ceiling and proxy/dataloader (median, min, max).

    python benchmarks/proxy_throughput.py --data-dir /tmp/cifar10 --device cuda --json
    python benchmarks/proxy_throughput.py --data-dir /tmp/cifar10 --device cpu --models small
    python benchmarks/proxy_throughput.py --quick --json --data-dir /tmp/cifar10 \\
        --device cpu --models small
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nas.config import ArchConfig
from nas.data import ImageData, load_dataset, proxy_split
from nas.data.augment import normalize, random_crop, random_flip
from nas.presets import PRESETS, preset
from nas.proxy.context import TrainingContext, make_trainer, proxy_batch_size, proxy_context
from nas.search.settings import SearchSettings
from nas.training import EpochResult, StopTraining, Trainer, resolve_device
from nas.training.trainer import release_memory

#: The arms, in the order of the first round (later rounds rotate it).
ARMS = ("proxy", "ceiling", "dataloader")
#: ``--models`` aliases: a small candidate and one near the default 5M parameter limit.
MODEL_ALIASES = {"small": "resnet20", "large": "enhanced-efficient-resnet"}
#: Validation images the proxy trainer scores after each epoch. Validation is never timed;
#: fewer images than the search's 2,000 only save wall time.
VAL_IMAGES = 256
#: ``--quick``: timed steps per epoch and rounds.
QUICK_STEPS, QUICK_ROUNDS = 8, 1

Seconds = tuple[int, float]  # (images trained, seconds spent training them)


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that a clock read covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_config(name: str, data: ImageData) -> tuple[str, ArchConfig]:
    """``--models`` entry -> (preset or file name, config): an alias (``small``, ``large``),
    a preset name, or an architecture JSON file."""
    target = MODEL_ALIASES.get(name, name)
    if target in PRESETS:
        cfg = preset(
            target,
            in_channels=data.in_channels,
            input_size=data.input_size,
            num_classes=data.num_classes,
        )
        return target, cfg
    return target, ArchConfig.from_file(target)


def bare_step(trainer: Trainer, x: Tensor, y: Tensor) -> None:
    """One forward / backward / SGD step of ``trainer``'s model, with the trainer's precision
    (its ``autocast()``), loss and optimizer, and nothing else (no learning-rate setting, no
    loss bookkeeping, no checks)."""
    with trainer.autocast():
        out = trainer.model(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=trainer.recipe.label_smoothing)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    trainer.optimizer.step()


class ProxyArm:
    """The search's proxy trainer; one timed epoch is one ``fit()`` stopped after its first
    epoch (the recipe, with its epochs and schedule, stays the search's)."""

    def __init__(self, ctx: TrainingContext, arch: ArchConfig, seed: int) -> None:
        self.trainer = make_trainer(ctx, arch, seed)

    def epoch(self) -> Seconds:
        """Train one epoch; its images and the training seconds the trainer measured
        (``EpochResult.images_per_s`` excludes validation)."""
        results: list[EpochResult] = []

        def stop(result: EpochResult) -> None:
            results.append(result)
            raise StopTraining("one epoch timed")

        with contextlib.suppress(StopTraining):
            self.trainer.fit(stop)
        images = self.trainer.steps_per_epoch * self.trainer.batch_size
        return images, images / results[0].images_per_s


class CeilingArm:
    """Forward / backward / SGD step only, over device-resident batches built beforehand
    (cropped and flipped once with the trainer's own augmentation, then normalised)."""

    def __init__(self, ctx: TrainingContext, arch: ArchConfig, seed: int) -> None:
        self.trainer = t = make_trainer(ctx, arch, seed)
        x = t.train_x
        if t.recipe.crop_padding:
            x = random_crop(x, t.recipe.crop_padding, t.generator)
        if t.recipe.flip:
            x = random_flip(x, t.generator)
        perm = torch.randperm(len(x), generator=t.cpu_generator).to(t.device)
        steps, bs = t.steps_per_epoch, t.batch_size
        self.batches = [
            (
                normalize(x[idx], t.mean, t.std).contiguous(memory_format=t.memory_format),
                t.train_y[idx],
            )
            for idx in perm[: steps * bs].view(steps, bs)
        ]

    def epoch(self) -> Seconds:
        """Train on every prepared batch once; images and wall seconds."""
        t = self.trainer
        t.model.train()
        synchronize(t.device)
        start = time.perf_counter()
        for x, y in self.batches:
            bare_step(t, x, y)
        synchronize(t.device)
        return len(self.batches) * t.batch_size, time.perf_counter() - start


class ArrayDataset(Dataset[tuple[Tensor, int]]):
    """What ``torchvision.datasets.CIFAR10`` is once loaded: decoded uint8 images as a numpy
    array (N, H, W, C; N, H, W for one channel), labels as a list of ints, and one PIL image
    per item handed to the transform."""

    def __init__(
        self, data: np.ndarray, targets: list[int], transform: Callable[[Image.Image], Tensor]
    ) -> None:
        self.data = data
        self.targets = targets
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


class DataLoaderArm:
    """The torchvision-datasets loop over the same images, at the trainer's batch size."""

    def __init__(self, ctx: TrainingContext, arch: ArchConfig, seed: int, workers: int) -> None:
        import torchvision.transforms as T

        self.trainer = t = make_trainer(ctx, arch, seed)
        images = ctx.data.train_x[ctx.split.train].permute(0, 2, 3, 1).contiguous().numpy()
        if images.shape[-1] == 1:
            images = images[..., 0]  # PIL mode "L", as torchvision's MNIST
        tf = T.Compose(
            [
                T.RandomCrop(ctx.data.input_size, padding=t.recipe.crop_padding),
                T.RandomHorizontalFlip(0.5 if t.recipe.flip else 0.0),
                T.ToTensor(),
                T.Normalize(ctx.mean.tolist(), ctx.std.tolist()),
            ]
        )
        dataset = ArrayDataset(images, ctx.data.train_y[ctx.split.train].tolist(), tf)
        self.loader = DataLoader(
            dataset,
            batch_size=t.batch_size,
            shuffle=True,
            num_workers=workers,
            pin_memory=t.device.type == "cuda",
            persistent_workers=workers > 0,
            drop_last=True,
            generator=torch.Generator().manual_seed(ctx.data_seed),
        )

    def epoch(self) -> Seconds:
        """One pass of the loader with a training step per batch; images and wall seconds
        (from asking for the first batch to the last step's end)."""
        t = self.trainer
        t.model.train()
        synchronize(t.device)
        start, seen = time.perf_counter(), 0
        for x, y in self.loader:
            xd = x.to(t.device, non_blocking=True).contiguous(memory_format=t.memory_format)
            bare_step(t, xd, y.to(t.device, non_blocking=True))
            seen += len(y)
        synchronize(t.device)
        return seen, time.perf_counter() - start


def spread(values: list[float], digits: int) -> dict[str, Any]:
    """min / median / max of ``values`` and the values themselves, rounded."""
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
        "rounds": [round(v, digits) for v in values],
    }


def bench_model(
    name: str, ctx: TrainingContext, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    """Warm up, then time every arm for ``args.rounds`` interleaved rounds on one model."""
    target, arch = model_config(name, ctx.data)
    arms: dict[str, ProxyArm | CeilingArm | DataLoaderArm] = {
        "proxy": ProxyArm(ctx, arch, args.seed),
        "ceiling": CeilingArm(ctx, arch, args.seed),
        "dataloader": DataLoaderArm(ctx, arch, args.seed, args.workers),
    }
    trainer = arms["proxy"].trainer
    params = sum(p.numel() for p in trainer.model.parameters())
    autocast = trainer.autocast()
    precision = (
        f"{str(autocast.fast_dtype).removeprefix('torch.')} autocast"
        if isinstance(autocast, torch.autocast)
        else "fp32"
    )
    memory_format = str(trainer.memory_format).removeprefix("torch.")
    warmup: dict[str, float] = {}
    for arm_name, arm in arms.items():
        log(f"{name}: warm-up epoch of {arm_name}")
        start = time.perf_counter()
        arm.epoch()
        warmup[arm_name] = round(time.perf_counter() - start, 2)
    rates: dict[str, list[float]] = {a: [] for a in ARMS}
    for r in range(args.rounds):
        order = ARMS[r % len(ARMS) :] + ARMS[: r % len(ARMS)]
        for arm_name in order:
            images, seconds = 0, 0.0
            for _ in range(args.epochs):
                n, s = arms[arm_name].epoch()
                images, seconds = images + n, seconds + s
            rates[arm_name].append(images / seconds)
            log(f"{name}: round {r + 1} {arm_name} {images / seconds:,.1f} images/s")
    del arms, trainer  # the DataLoader's persistent workers end with it
    release_memory(ctx.device)
    ratios = {
        f"proxy/{other}": [p / o for p, o in zip(rates["proxy"], rates[other], strict=True)]
        for other in ("ceiling", "dataloader")
    }
    return {
        "model": target,
        "params": params,
        "precision": precision,
        "memory_format": memory_format,
        "warmup_seconds": warmup,
        "images_per_s": {a: spread(v, 1) for a, v in rates.items()},
        "ratios": {k: spread(v, 3) for k, v in ratios.items()},
    }


def print_table(result: dict[str, Any]) -> None:
    """The result as a readable table."""
    print(
        f"device {result['device']} ({result['device_name']}), torch {result['torch']}, "
        f"{result['threads']} threads, {result['cpus']} CPUs, "
        f"{result['dataloader_workers']} DataLoader workers"
    )
    print(
        f"{result['precision']}, {result['memory_format']}, batch {result['batch_size']} "
        f"({result['batch_size_from']}), {result['steps']} steps = "
        f"{result['images_per_epoch']:,} images per epoch, {result['epochs']} timed epoch(s) "
        f"per arm per round, {result['rounds']} round(s) after one untimed epoch per arm"
    )
    print()
    print(f"{'model':28s} {'arm':11s} {'min':>9s} {'median':>9s} {'max':>9s}  images/s")
    for key, m in result["models"].items():
        label = f"{key} ({m['model']}, {m['params']:,})"
        for arm in ARMS:
            s = m["images_per_s"][arm]
            print(f"{label:28s} {arm:11s} {s['min']:9,.1f} {s['median']:9,.1f} {s['max']:9,.1f}")
            label = ""
        for ratio, s in m["ratios"].items():
            low, mid, high = s["min"], s["median"], s["max"]
            print(f"{'':28s} {ratio:17s} {mid:.3f} (min {low:.3f}, max {high:.3f})")
    print()
    print("ratios: median of the per-round ratios; each arm's own first epoch is not timed")


def main() -> None:
    """Parse the flags, run the benchmark, print JSON or a table."""
    defaults = SearchSettings()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--data-dir", required=True, help="data folder (imagefolder: DIR/train/<class>/*)"
    )
    parser.add_argument(
        "--dataset", default="imagefolder", help="a registered data set (default imagefolder)"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument(
        "--models",
        default="small,large",
        help="comma-separated: small (resnet20, 270k parameters), large "
        "(enhanced-efficient-resnet, 4.9M), a preset name or an architecture JSON file "
        "(default small,large)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step (default: the search's, proxy_batch_size(subset): 64 for 5000)",
    )
    parser.add_argument(
        "--subset",
        type=int,
        default=defaults.proxy_subset,
        help="training images (the search's --proxy-subset, default 5000); an epoch is "
        "subset // batch steps",
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="timed epochs per arm per round (default 1)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, cpu_count()),
        help="DataLoader worker processes of the dataloader arm (default min(4, CPUs))",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="initial weights and data seed (default 0)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_STEPS} steps per epoch at the default batch size, "
        f"{QUICK_ROUNDS} round",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    for flag in ("subset", "epochs", "rounds"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
    if args.batch_size is not None and args.batch_size < 2:
        parser.error("--batch-size must be at least 2")
    if args.workers < 0:
        parser.error("--workers must be at least 0")
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_dir)

    n_default = len(proxy_split(len(data.train_y), args.subset, 1).train)
    user_batch = args.batch_size is not None
    if args.quick:
        # The batch of a default run, for only QUICK_STEPS steps per epoch.
        args.batch_size = args.batch_size or proxy_batch_size(n_default)
        args.subset = QUICK_STEPS * args.batch_size
        args.rounds = QUICK_ROUNDS
    settings = defaults.replace(
        proxy_subset=args.subset, proxy_val=VAL_IMAGES, proxy_batch_size=args.batch_size
    )
    ctx = proxy_context(settings.proxy, data, device, args.seed)  # what nas search builds
    n_train = len(ctx.split.train)
    bs = min(ctx.recipe.batch_size, n_train)  # the trainer's
    if user_batch:
        batch_from = "--batch-size"
    elif args.quick:
        batch_from = f"proxy_batch_size({n_default}), as nas search"
    else:
        batch_from = f"proxy_batch_size({n_train}), as nas search"

    def log(message: str) -> None:
        if not args.json:
            print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)

    models = {name: bench_model(name, ctx, args, log) for name in args.models.split(",")}
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "cpus": cpu_count(),
        "dataloader_workers": args.workers,
        # The trainer's choice for this device, the same for every model and every arm.
        "precision": ", ".join(sorted({m["precision"] for m in models.values()})),
        "memory_format": ", ".join(sorted({m["memory_format"] for m in models.values()})),
        "batch_size": bs,
        "batch_size_from": batch_from,
        "subset": n_train,
        "steps": n_train // bs,
        "images_per_epoch": n_train // bs * bs,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "quick": args.quick,
        "recipe": ctx.recipe.to_dict(),
        "warmup": "one untimed epoch per arm before the first round (proxy: its trainer's "
        "first epoch; dataloader: includes worker start-up)",
        "models": models,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
