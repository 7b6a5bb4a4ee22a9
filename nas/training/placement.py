"""Where local worker processes train: one GPU each, round-robin, or the CPU.

``nas search --workers K`` and ``nas fidelity --workers K`` place their processes with
:func:`assign_devices`: each GPU worker gets ``CUDA_VISIBLE_DEVICES`` set to its one GPU
(picked from the parent's own ``CUDA_VISIBLE_DEVICES`` list when it has one) and trains on
``--device cuda``, so it sees exactly one device; more workers than GPUs share them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from nas.errors import NasError

#: The variable that limits which GPUs a CUDA process sees (and in which order).
CUDA_VISIBLE = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class Placement:
    """Where one worker process trains.

    Attributes:
        device: its ``--device`` (``cuda`` on a GPU: the one device it sees).
        gpu: the GPU it is pinned to, as the parent names it in ``CUDA_VISIBLE_DEVICES``
            (an index or a ``GPU-``/``MIG-`` UUID); None off the GPU.
    """

    device: str
    gpu: str | None = None

    @property
    def label(self) -> str:
        """How log lines name it: ``GPU 2``, or the device (``cpu``)."""
        if self.gpu is None:
            return self.device
        return self.gpu if self.gpu.startswith(("GPU-", "MIG-")) else f"GPU {self.gpu}"

    @property
    def env(self) -> dict[str, str]:
        """What the worker's environment gets on top of the parent's."""
        return {} if self.gpu is None else {CUDA_VISIBLE: self.gpu}


def visible_gpus(cuda_visible_devices: str | None, count: int) -> list[str]:
    """The GPUs this process sees, each as a child's ``CUDA_VISIBLE_DEVICES`` names it.

    Args:
        cuda_visible_devices: the parent's ``CUDA_VISIBLE_DEVICES`` (None: not set).
        count: how many GPUs CUDA reports (``torch.cuda.device_count()``; 0 without CUDA).

    Without the variable the GPUs are ``0 .. count-1``; with it, its first ``count`` entries
    (CUDA ignores an entry it cannot find and everything after it).
    """
    if count <= 0:
        return []
    if cuda_visible_devices is None:
        return [str(i) for i in range(count)]
    entries = [e.strip() for e in cuda_visible_devices.split(",")]
    return [e for e in entries if e][:count]


def place_workers(device: str, k: int, gpus: Sequence[str]) -> list[Placement]:
    """Where each of ``k`` workers trains, given the ``--device`` asked for and the GPUs
    this process sees (:func:`visible_gpus`): with ``auto`` or ``cuda`` and GPUs present,
    worker i gets GPU ``gpus[i % len(gpus)]`` and ``--device cuda``; ``cuda:N`` pins every
    worker to the N-th visible GPU; otherwise (no GPU, ``cpu``) every worker trains on the
    device asked for (``auto`` without a GPU: ``cpu``).

    Raises:
        NasError: for ``cuda:N`` with N not among the visible GPUs.
    """
    if gpus and device in ("auto", "cuda"):
        return [Placement("cuda", gpus[i % len(gpus)]) for i in range(k)]
    if gpus and device.startswith("cuda:"):
        index = device.removeprefix("cuda:")
        if not index.isdigit() or int(index) >= len(gpus):
            raise NasError(
                f"--device {device}: this machine shows {len(gpus)} GPU(s), "
                f"cuda:0 to cuda:{len(gpus) - 1}"
            )
        return [Placement("cuda", gpus[int(index)]) for _ in range(k)]
    if device == "auto":
        return [Placement("cpu") for _ in range(k)]
    return [Placement(device) for _ in range(k)]


def assign_devices(
    device: str, k: int, environ: Mapping[str, str] | None = None
) -> list[Placement]:
    """:func:`place_workers` for the GPUs CUDA shows this process (``environ``: the
    environment whose ``CUDA_VISIBLE_DEVICES`` counts; default ``os.environ``).

    Raises:
        NasError: for ``cuda`` on a machine without a GPU, or a device torch does not know.
    """
    env = os.environ if environ is None else environ
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:  # cuda without a GPU, or no device at all, refused before workers start
        from nas.training.trainer import resolve_device

        resolve_device(device)
    return place_workers(device, k, visible_gpus(env.get(CUDA_VISIBLE), count))


def worker_env(placement: Placement, threads: int, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a worker: ``base`` with its CPU threads and its one GPU."""
    return {**base, "OMP_NUM_THREADS": str(threads), **placement.env}


def started_message(placements: Sequence[Placement], threads: int) -> str:
    """The line that says where the workers went: which GPU each one uses, or the CPU."""
    k = len(placements)
    workers = f"{k} worker{'s' if k != 1 else ''}"
    if not any(p.gpu is not None for p in placements):
        devices = ", ".join(p.device for p in placements)
        return f"started {workers} on {devices} ({threads} CPU threads each)"
    by_gpu: dict[str, list[int]] = {}
    for i, p in enumerate(placements):
        by_gpu.setdefault(p.label, []).append(i)
    groups = "; ".join(
        f"{label}: worker{'s' if len(ws) > 1 else ''} {', '.join(map(str, ws))}"
        for label, ws in by_gpu.items()
    )
    n = len(by_gpu)
    return (
        f"started {workers} on {n} GPU{'s' if n > 1 else ''} ({groups}), {threads} CPU threads each"
    )
