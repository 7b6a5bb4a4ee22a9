"""``nas search --workers K``: K local worker processes sharing one study.

The parent checks the settings, decodes the data once (children load the cached tensors),
creates the study and queues the presets, then starts K ``nas search`` processes with the
same settings, spread over the GPUs round-robin (several per GPU when K exceeds the GPUs),
or K on the CPU with the cores shared out. Each GPU worker gets ``CUDA_VISIBLE_DEVICES`` set
to its one GPU (picked from the parent's own ``CUDA_VISIBLE_DEVICES`` list when it has one)
and trains on ``--device cuda``, so it sees exactly one device. Their log lines come out
prefixed with the worker number and its GPU; Ctrl-C is passed on to every worker; the
summary prints once at the end. Workers on other machines run the same ``nas search``
command against the same ``--storage`` URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from sqlalchemy.engine import make_url

from nas.errors import NasError
from nas.search.runner import SearchOutcome, enqueue_presets, open_study, prepare
from nas.search.samplers import make_sampler
from nas.search.settings import SearchSettings
from nas.search.stats import study_stats
from nas.search.storage import open_storage

SQLITE_WARNING = (
    "warning: {k} workers on SQLite: Optuna advises against SQLite for parallel work (one "
    "writer at a time, 'database is locked' errors under load). It works for a few local "
    "workers; for more, or for several machines, use PostgreSQL: --storage "
    "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (README: Running on many GPUs and machines)"
)


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
    environment whose ``CUDA_VISIBLE_DEVICES`` counts; default ``os.environ``)."""
    env = os.environ if environ is None else environ
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_study_file(settings: SearchSettings, path: Path) -> None:
    """``settings`` as a study file that ``nas search STUDY_FILE`` reads back."""
    lines = ["[search]"]
    for key, value in settings.to_dict().items():
        if key in ("proxy_subset", "proxy_val") and value is None:
            value = "all"  # None means every image; the file spells it 'all'
        if value is not None and key not in ("workers", "worker_index"):
            lines.append(f"{key} = {_toml_value(value)}")
    path.write_text("\n".join(lines) + "\n")


def _pump(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stderr.write(f"{prefix}{line}")
        sys.stderr.flush()


def run_workers(settings: SearchSettings) -> tuple[SearchOutcome, int]:
    """Run ``settings.workers`` local workers on the study; returns how it ended and the
    exit code (0, 130 after Ctrl-C or SIGTERM, else the first failing worker's)."""
    k = settings.workers
    placements = assign_devices(settings.device, k)  # a bad --device stops before any work
    if make_url(settings.storage_url).get_backend_name() == "sqlite":
        print(SQLITE_WARNING.format(k=k), file=sys.stderr)
    started = time.perf_counter()
    space, data = prepare(settings)
    storage = open_storage(settings.storage_url, grace_period=settings.grace_period)
    study = open_study(
        settings, storage, make_sampler(settings.sampler, settings.seed, settings.trials)
    )
    trained_before = study_stats(study, front=False).trained
    if settings.enqueue_presets:
        enqueue_presets(study, space, settings, data)
    threads = max(1, (os.cpu_count() or 1) // k)
    procs: list[subprocess.Popen[str]] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="nas-workers-") as tmp:
        study_file = Path(tmp) / "study.toml"
        write_study_file(
            settings.replace(enqueue_presets=False, study=study.study_name), study_file
        )
        try:
            for i, placement in enumerate(placements):
                cmd = [
                    sys.executable,
                    "-m",
                    "nas",
                    "search",
                    str(study_file),
                    "--workers",
                    "1",
                    "--worker-index",
                    str(i),
                    "--device",
                    placement.device,
                    "--quiet",
                ]
                # Own session: a terminal's Ctrl-C reaches each worker once, via the parent.
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=worker_env(placement, threads, os.environ),
                    start_new_session=True,
                )
                assert proc.stderr is not None
                threading.Thread(
                    target=_pump,
                    args=(proc.stderr, f"[worker {i} {placement.label}] "),
                    daemon=True,
                ).start()
                procs.append(proc)
            print(started_message(placements, threads), file=sys.stderr)
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into it by the CLI
            interrupted = True
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            codes = [p.wait() for p in procs]
    stats = study_stats(study)
    reason = (
        "interrupted by the user (Ctrl-C)"
        if interrupted
        else f"{k} workers finished with exit codes {codes}"
    )
    outcome = SearchOutcome(
        study,
        stats,
        time.perf_counter() - started,
        reason,
        interrupted,
        stats.trained - trained_before,
    )
    code = 130 if interrupted else next((c for c in codes if c != 0), 0)
    return outcome, code
