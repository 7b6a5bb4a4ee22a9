"""Where and how a hardware measurement is made, recorded with the study that holds it."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from typing import Any

from nas.errors import NasError

#: Timed runs per latency measurement (the median is reported).
RUNS = 30

#: Batch measured when ``--latency-batch`` is not given, by device type.
DEFAULT_BATCH = {"cpu": 1, "cuda": 32}

#: What must agree for two measurements to be comparable (the torch version is recorded,
#: not compared: an upgrade does not make a study's measurements meaningless).
COMPARED = ("device", "device_name", "threads", "batch", "precision", "memory_format")


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else the platform's word)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass(frozen=True)
class HardwareContext:
    """The context of a latency or memory measurement.

    Attributes:
        device: ``cpu`` or ``cuda`` (the device type).
        device_name: the processor's or GPU's model name.
        threads: intra-op threads the measurement runs with (pinned while measuring).
        batch: images per forward pass.
        precision: ``fp32`` (CPU) or ``bf16`` autocast (CUDA), as the proxy trains.
        memory_format: ``contiguous`` (CPU) or ``channels_last`` (CUDA), as the proxy trains.
        torch: the torch version.
    """

    device: str
    device_name: str
    threads: int
    batch: int
    precision: str
    memory_format: str
    torch: str

    @classmethod
    def current(
        cls, device: Any = "cpu", batch: int | None = None, threads: int | None = None
    ) -> HardwareContext:
        """The context of this process on ``device`` (a ``torch.device`` or its name), with
        the proxy's precision and memory format there, ``batch`` (default: 1 on CPU, 32 on
        CUDA) and ``threads`` (default: this process's intra-op threads)."""
        import torch

        dev = torch.device(device)
        cuda = dev.type == "cuda"
        name = torch.cuda.get_device_name(dev) if cuda else cpu_name()
        return cls(
            device=dev.type,
            device_name=name,
            threads=threads or torch.get_num_threads(),
            batch=batch or DEFAULT_BATCH.get(dev.type, 1),
            precision="bf16" if cuda else "fp32",
            memory_format="channels_last" if cuda else "contiguous",
            torch=torch.__version__.split("+")[0],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareContext:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    @property
    def key(self) -> str:
        """A short fingerprint of what makes measurements comparable."""
        text = json.dumps([getattr(self, k) for k in COMPARED])
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    @property
    def estimated_memory(self) -> bool:
        """Whether peak memory is an estimate here (on CPU) rather than measured (CUDA)."""
        return self.device != "cuda"

    def describe(self) -> str:
        """``Intel Xeon ... (cpu), 2 threads, batch 1, fp32, torch 2.14.1``."""
        return (
            f"{self.device_name} ({self.device}), {self.threads} thread"
            f"{'s' if self.threads != 1 else ''}, batch {self.batch}, {self.precision}, "
            f"{self.memory_format}, torch {self.torch}"
        )

    def differences(self, other: HardwareContext) -> list[str]:
        """``threads 2 -> 8``, ... for each compared field that differs."""
        return [
            f"{k} {getattr(self, k)} -> {getattr(other, k)}"
            for k in COMPARED
            if getattr(self, k) != getattr(other, k)
        ]


def check_same_hardware(
    recorded: dict[str, Any] | None, current: HardwareContext, study: str, remeasure: bool
) -> None:
    """Refuse, in one line, to add measurements made in another context to a study's.

    Raises:
        NasError: when ``recorded`` (the study's context) differs from ``current`` and
            ``remeasure`` is not set.
    """
    if recorded is None or remeasure:
        return
    before = HardwareContext.from_dict(recorded)
    changed = before.differences(current)
    if changed:
        raise NasError(
            f"study {study!r} was measured on {before.describe()}; this run would measure "
            f"on another ({'; '.join(changed)}): run it there, or pass --remeasure to measure "
            "the candidates from now on here"
        )


def study_context(study: Any, settings: Any) -> HardwareContext | None:
    """Check and record where a search's workers measure (None: the study neither optimises
    nor limits a hardware metric): on ``--device`` (``auto``: CUDA when this machine has
    it), with the study's thread count (the one recorded, or this process's for a study that
    has none or is measured again, so that every worker measures alike), at
    ``--latency-batch``. A study without a context, or measured again, records this one.

    Args:
        settings: the search's settings (objectives, limits, device, latency_batch,
            remeasure).

    Raises:
        NasError: in one line, for a context other than the recorded one (another device,
            batch or precision) unless ``settings.remeasure``.
    """
    from nas.objectives import hardware
    from nas.study.record import StudyRecord
    from nas.training import resolve_device

    wanted = {m.name for m in hardware()} & {*settings.objectives, *settings.limits}
    if not wanted:
        return None
    record = StudyRecord(study)
    recorded = record.hardware
    threads = None if recorded is None or settings.remeasure else int(recorded["threads"])
    context = HardwareContext.current(
        resolve_device(settings.device), settings.latency_batch, threads
    )
    check_same_hardware(recorded, context, study.study_name, settings.remeasure)
    if recorded != context.to_dict():
        record.set_hardware(context.to_dict(), context.key)
    return context


def study_hardware_text(study: Any) -> str:
    """Where and how a study's latency and peak memory were measured, in one sentence (""
    for a study that measured neither): ``latency (median of 30 timed runs after warm-up)
    and peak memory (estimated from tensor sizes) measured on ...``."""
    from nas.objectives import METRICS, hardware
    from nas.study.record import HARDWARE_CONTEXTS, StudyRecord
    from nas.study.stats import comparable_contexts

    record = StudyRecord(study)
    recorded = record.hardware
    if recorded is None:
        return ""
    current = HardwareContext.from_dict(recorded)
    contexts = record.get(HARDWARE_CONTEXTS)
    contexts = contexts if isinstance(contexts, dict) else {}
    # the context of the values a front compares: the latest one a trained trial was
    # measured in, which is not yet the study's own after --remeasure until one is trained
    front = [k for k in comparable_contexts(study.get_trials(deepcopy=False)) if k in contexts]
    ctx = HardwareContext.from_dict(contexts[front[0]]) if front else current
    names = [m.name for m in hardware() if m.name in record.objectives or record.limit(m.name)]
    how = {
        "latency": f"latency (median of {RUNS} timed runs after warm-up)",
        "memory": "peak memory ("
        + (
            "estimated from the tensor sizes of a forward pass"
            if ctx.estimated_memory
            else "torch.cuda.max_memory_allocated"
        )
        + ")",
    }
    measured = " and ".join(how.get(n, METRICS[n].label) for n in names) or "latency"
    text = f"{measured} measured on {ctx.describe()}"
    if ctx.key != current.key:
        text += (
            f" (one of {len(contexts)} contexts: the study measures on {current.describe()} "
            "since --remeasure, and no trial measured there is trained yet; a front against "
            "latency or memory holds the trials of the latest context a trained trial was "
            "measured in, and each trial's export names the context of its own values)"
        )
    elif len(contexts) > 1:
        text += (
            f" (the latest of {len(contexts)} contexts: the study was measured again with "
            "--remeasure; a front against latency or memory holds the trials of the latest "
            "context a trained trial was measured in, and each trial's export names the "
            "context of its own values)"
        )
    return text
