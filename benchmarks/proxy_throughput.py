"""Is the proxy trainer's input pipeline what limits it?

On the same model, the same images and the same batch size, measures training images per
second of

(a) the proxy trainer (``nas.training.Trainer``: uint8 tensor on the device, whole-epoch
    crop and flip, per-step normalisation, SGD with its per-step schedule);
(b) the ceiling: a bare forward/backward/step loop over batches built beforehand;
(c) the standard torchvision loop: ``ImageFolder`` + ``DataLoader(num_workers=2)`` +
    RandomCrop/RandomHorizontalFlip/ToTensor/Normalize transforms.

    python benchmarks/proxy_throughput.py --data-dir /tmp/cifar10 --device cpu --json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.data import load_dataset, proxy_split
from nas.data.augment import normalize
from nas.models import build_model
from nas.presets import preset
from nas.training import Trainer, proxy_recipe, resolve_device


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="image folder (DIR/train/<class>/*)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="resnet20", help="a preset name")
    parser.add_argument("--images", type=int, default=4096, help="training images per method")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per method")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)

    data = load_dataset("imagefolder", args.data_dir)
    split = proxy_split(len(data.train_y), args.images, 256)
    idx = split.train
    mean, std = data.mean_std()
    cfg = preset(
        args.model,
        in_channels=data.in_channels,
        input_size=data.input_size,
        num_classes=data.num_classes,
    )
    bs = args.batch_size

    # (a) the proxy trainer, one epoch over the images (its own timer excludes evaluation)
    torch.manual_seed(0)
    recipe = proxy_recipe(1).replace(batch_size=bs)
    warm = Trainer(
        build_model(cfg),
        recipe,
        train_x=data.train_x[idx[: bs * args.warmup]],
        train_y=data.train_y[idx[: bs * args.warmup]],
        eval_x=data.train_x[:8],
        eval_y=data.train_y[:8],
        mean=mean,
        std=std,
        device=device,
        seed=0,
    )
    warm.fit()  # warms up kernels and allocator for the shapes used below
    trainer = Trainer(
        build_model(cfg),
        recipe,
        train_x=data.train_x[idx],
        train_y=data.train_y[idx],
        eval_x=data.train_x[:8],
        eval_y=data.train_y[:8],
        mean=mean,
        std=std,
        device=device,
        seed=0,
    )
    proxy = trainer.fit().images_per_s

    # (b) ceiling: batches already normalised and on the device
    torch.manual_seed(0)
    x_all = normalize(data.train_x[idx].to(device), mean.to(device), std.to(device))
    y_all = data.train_y[idx].to(device)
    n_steps = len(idx) // bs
    ready = [(x_all[i * bs : (i + 1) * bs], y_all[i * bs : (i + 1) * bs]) for i in range(n_steps)]
    memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = build_model(cfg).to(device).to(memory_format=memory)
    ceiling = timed_steps(
        model,
        ready[: args.warmup] + ready,
        device,
        args.warmup,
        lambda x: x.contiguous(memory_format=memory),
    )

    # (c) torchvision ImageFolder + DataLoader(num_workers=2) + transforms
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
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    torch.manual_seed(0)
    model = build_model(cfg).to(device).to(memory_format=memory)
    torchvision_loop = timed_steps(
        model, loader, device, args.warmup, lambda x: x.contiguous(memory_format=memory)
    )

    result = {
        "model": args.model,
        "device": str(device),
        "images": len(idx),
        "batch_size": bs,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "proxy_images_per_s": round(proxy, 1),
        "ceiling_images_per_s": round(ceiling, 1),
        "torchvision_loop_images_per_s": round(torchvision_loop, 1),
        "proxy_vs_ceiling": round(proxy / ceiling, 3),
        "proxy_vs_torchvision": round(proxy / torchvision_loop, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:32s} {v}")


if __name__ == "__main__":
    main()
