"""Is the proxy trainer's input pipeline what limits it?

On the same model, the same images and the same batch size, measures training images per
second of

(a) the proxy trainer (``nas.training.Trainer``: uint8 tensor on the device, whole-epoch
    crop and flip, per-step normalisation, SGD with its per-step schedule), in its second
    epoch;
(b) the ceiling: a bare forward/backward/step loop over batches built beforehand, after
    warm-up steps;
(c) the standard torchvision loop: ``ImageFolder`` + ``DataLoader(num_workers=2)`` +
    RandomCrop/RandomHorizontalFlip/ToTensor/Normalize transforms, after warm-up steps.

The three run in interleaved rounds and the medians are reported.

    python benchmarks/proxy_throughput.py --data-dir /tmp/cifar10 --device cpu --json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.config import ArchConfig, AttentionConfig, StageConfig
from nas.data import load_dataset, proxy_split
from nas.data.augment import normalize
from nas.models import build_model
from nas.presets import PRESETS, preset
from nas.training import EpochResult, Trainer, proxy_recipe, resolve_device


def timed_steps(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    device: torch.device,
    warmup: int,
    prepare: Callable[[Tensor], Tensor],
) -> float:
    """Images per second of forward/backward/step over ``batches`` after ``warmup`` steps."""
    opt = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    model.train()
    seen, start = 0, 0.0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        x, y = prepare(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def model_config(name: str, in_channels: int, size: int, classes: int) -> ArchConfig:
    """The benchmarked architecture: ``small``, a preset, or a JSON file."""
    if name == "small":
        return ArchConfig(
            stem_width=8,
            stages=(StageConfig(8, 1, 1), StageConfig(16, 1, 2), StageConfig(32, 1, 2)),
            attention=AttentionConfig(type="se", placement="in_block", reduction=4),
            in_channels=in_channels,
            input_size=size,
            num_classes=classes,
        )
    if name in PRESETS:
        return preset(name, in_channels=in_channels, input_size=size, num_classes=classes)
    return ArchConfig.from_file(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="image folder (DIR/train/<class>/*)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--model",
        default="small",
        help="'small' (an 8/16/32-channel candidate, where the input pipeline "
        "matters most), a preset name, or an architecture JSON file",
    )
    parser.add_argument("--images", type=int, default=4096, help="training images per method")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per method")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)

    data = load_dataset("imagefolder", args.data_dir)
    split = proxy_split(len(data.train_y), args.images, 256)
    idx = split.train
    mean, std = data.mean_std()
    cfg = model_config(args.model, data.in_channels, data.input_size, data.num_classes)
    bs = args.batch_size

    memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    n_steps = len(idx) // bs

    def proxy() -> float:
        """(a) Two epochs of the proxy trainer; the second epoch's training throughput
        (it includes that epoch's crop/flip pass and every per-step cost)."""
        torch.manual_seed(0)
        trainer = Trainer(
            build_model(cfg),
            proxy_recipe(2).replace(batch_size=bs),
            train_x=data.train_x[idx],
            train_y=data.train_y[idx],
            eval_x=data.train_x[:8],
            eval_y=data.train_y[:8],
            mean=mean,
            std=std,
            num_classes=data.num_classes,
            device=device,
            data_seed=0,
        )
        epochs: list[EpochResult] = []
        trainer.fit(epochs.append)
        return epochs[-1].images_per_s

    def ceiling() -> float:
        """(b) Batches already normalised and on the device: only forward/backward/step."""
        torch.manual_seed(0)
        x_all = normalize(data.train_x[idx].to(device), mean.to(device), std.to(device))
        y_all = data.train_y[idx].to(device)
        ready = [
            (x_all[i * bs : (i + 1) * bs], y_all[i * bs : (i + 1) * bs]) for i in range(n_steps)
        ]
        model = build_model(cfg).to(device).to(memory_format=memory)
        return timed_steps(
            model,
            ready[: args.warmup] + ready,
            device,
            args.warmup,
            lambda x: x.contiguous(memory_format=memory),
        )

    def torchvision_loop() -> float:
        """(c) ImageFolder + DataLoader(num_workers=2) + torchvision transforms."""
        import torchvision.transforms as T
        from torchvision.datasets import ImageFolder

        tf = T.Compose(
            [
                T.RandomCrop(data.input_size, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(mean.tolist(), std.tolist()),
            ]
        )
        folder = ImageFolder(f"{args.data_dir}/train", transform=tf)
        subset = torch.utils.data.Subset(folder, idx[: bs * (n_steps + args.warmup)].tolist())
        loader = torch.utils.data.DataLoader(
            subset,
            batch_size=bs,
            shuffle=True,
            num_workers=2,
            drop_last=True,
            pin_memory=device.type == "cuda",
        )
        torch.manual_seed(0)
        model = build_model(cfg).to(device).to(memory_format=memory)
        return timed_steps(
            model, loader, device, args.warmup, lambda x: x.contiguous(memory_format=memory)
        )

    samples: dict[str, list[float]] = {"proxy": [], "ceiling": [], "torchvision": []}
    for _ in range(args.rounds):  # interleaved, so that drift hits every method alike
        samples["proxy"].append(proxy())
        samples["ceiling"].append(ceiling())
        samples["torchvision"].append(torchvision_loop())
    med = {k: statistics.median(v) for k, v in samples.items()}

    result = {
        "model": args.model,
        "device": str(device),
        "images": len(idx),
        "batch_size": bs,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "rounds": args.rounds,
        "proxy_images_per_s": round(med["proxy"], 1),
        "ceiling_images_per_s": round(med["ceiling"], 1),
        "torchvision_loop_images_per_s": round(med["torchvision"], 1),
        "proxy_vs_ceiling": round(med["proxy"] / med["ceiling"], 3),
        "proxy_vs_torchvision": round(med["proxy"] / med["torchvision"], 3),
        "samples": {k: [round(x, 1) for x in v] for k, v in samples.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:32s} {v}")


if __name__ == "__main__":
    main()
