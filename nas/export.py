"""Export an architecture from a study as a file that rebuilds the identical model.

The file holds ``arch`` (what :func:`nas.build_model` and ``nas count --config`` read) and
``meta``: params, FLOPs, proxy and full accuracy, study, trial, package versions, the
per-part breakdown. With weights, a state dict (EMA weights of ``nas train-winners``) and an
ONNX file are written beside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial

from nas.config import ARCH_FILE_FORMAT, ArchConfig
from nas.counting import count
from nas.errors import NasError, first_line
from nas.files import read_torch
from nas.models import build_model
from nas.objectives import METRICS
from nas.study.record import StudyRecord, TrialRecord
from nas.study.stats import choose_best
from nas.study.storage import safe_url

__all__ = ["choose_best", "export_document", "export_weights", "load_snippet", "write_document"]

FORMAT = ARCH_FILE_FORMAT
FORMATS = ("json", "yaml")


def versions() -> dict[str, str]:
    """Versions of the packages that define the model and its counts."""
    out = {}
    for name in ("nas-budget", "torch", "torchvision", "optuna", "fvcore"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def load_snippet(
    arch_file: str, weights_file: str | None, normalize: Mapping[str, Any] | None = None
) -> str:
    """How to load the export in Python; the paths are quoted as Python strings (a quote, a
    backslash or any other character in a path stays as it is). With weights, how their
    inputs are normalised (``normalize``: the per-channel ``mean`` and ``std`` that full
    training recorded; None: not recorded, by a version before it did)."""
    weights = f", weights={json.dumps(weights_file)}" if weights_file else ""
    lines = [
        "import nas",
        f"model = nas.build_model(nas.ArchConfig.from_file({json.dumps(arch_file)}){weights})",
        "model.eval()",
    ]
    if weights_file and normalize:
        mean, std = (_numbers(normalize[k]) for k in ("mean", "std"))
        lines = [
            "import torch",
            *lines,
            "# its inputs: float images in [0, 1], normalised per channel as in training",
            f"mean = torch.tensor({mean}).view(1, -1, 1, 1)",
            f"std = torch.tensor({std}).view(1, -1, 1, 1)",
            "# logits = model((images - mean) / std)",
        ]
    elif weights_file:
        lines.append(
            "# its inputs: float images in [0, 1], minus the training images' per-channel mean, "
            "over their std (not recorded: train the trial again with nas train-winners)"
        )
    return "\n".join(lines) + "\n"


def _numbers(values: Any) -> str:
    """A list of floats as Python writes it, to 6 significant digits."""
    return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"


def input_meta(arch: ArchConfig, trial: TrialRecord) -> dict[str, Any]:
    """What the model's inputs are: channels, size, value range and, once full training
    recorded it, the per-channel normalisation its weights need."""
    out: dict[str, Any] = {"channels": arch.in_channels, "size": arch.input_size}
    if trial.full_normalize:
        out |= {"range": [0.0, 1.0], **trial.full_normalize}
    return {"input": out}


def hardware_meta(study: StudyRecord, trial: TrialRecord) -> dict[str, Any]:
    """``{"hardware": context}`` when the trial has a latency or memory value: where and how
    it was measured (device, its name, threads, batch, precision, memory format, torch),
    whether the memory is an estimate, and the context in words; else nothing."""
    from nas.hardware.context import HardwareContext
    from nas.objectives import hardware

    context = study.hardware_of(trial)
    if context is None or all(trial.value(m) is None for m in hardware()):
        return {}
    ctx = HardwareContext.from_dict(context)
    out = {**context, "described": ctx.describe()}
    if trial.value("memory") is not None:
        out["memory"] = (
            "estimated from tensor sizes (CPU)" if ctx.estimated_memory else "measured (CUDA)"
        )
    return {"hardware": out}


def export_document(
    study: optuna.Study, trial: FrozenTrial, selected_by: str, storage_url: str
) -> dict[str, Any]:
    """The export of ``trial``: its config and metadata, with its value of every metric it
    recorded (the study's objectives among them) and the study's limits."""
    from nas.study.stats import candidate_runs, mean_accuracy

    r = TrialRecord(trial)
    arch = ArchConfig.from_dict(r.arch or {})
    counts = count(arch)
    study_record = StudyRecord(study)
    runs = candidate_runs(study.get_trials(deepcopy=False)).get(trial.number, [trial])
    return {
        "format": FORMAT,
        "arch": arch.to_dict(),
        "meta": {
            "summary": arch.summary(),
            "params": counts.params,
            "flops": counts.flops,
            "flops_convention": "fvcore: one multiply-add = one flop; attention ops counted",
            "objectives": list(study_record.objectives),
            "metrics": {
                name: {"value": value, "label": m.label, "unit": m.unit}
                for name, m in METRICS.items()
                if (value := r.value(name)) is not None
            },
            "limits": {
                name: limit
                for name, _ in METRICS.items()
                if (limit := study_record.limit(name)) is not None
            },
            **hardware_meta(study_record, r),
            **input_meta(arch, r),
            "proxy_accuracy": r.accuracy,
            # a candidate trained more than once counts by its mean everywhere
            **(
                {"proxy_runs": {"trials": [t.number for t in runs], "mean": mean_accuracy(runs)}}
                if len(runs) > 1
                else {}
            ),
            "full_val_accuracy": r.full_val_accuracy,
            "full_accuracy": r.full_accuracy,
            "full_epochs": r.full_epochs,
            "study": study.study_name,
            "storage": safe_url(storage_url),
            "trial": trial.number,
            "selected_by": selected_by,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "breakdown": [p.to_dict() for p in counts.parts],
        },
    }


def write_document(doc: dict[str, Any], path: Path, fmt: str) -> None:
    """Write ``doc`` as JSON or YAML; an unwritable path is a user error."""
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False)
    else:
        text = json.dumps(doc, indent=2) + "\n"
    prepare_folder(path)
    try:
        path.write_text(text)
    except OSError as exc:
        raise NasError(f"cannot write {path}: {exc.strerror}") from None


def prepare_folder(path: Path) -> None:
    """Create the folder ``path`` goes into; a path that cannot hold files is a user error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NasError(f"cannot write {path}: {exc.strerror} ({path.parent})") from None


def export_weights(trial: FrozenTrial, arch: ArchConfig, path: Path) -> tuple[Path, Path]:
    """Write the trial's trained weights (``path`` with .pt) and an ONNX file (.onnx).

    Raises:
        NasError: when the trial has no trained weights.
    """
    record = TrialRecord(trial)
    source = record.weights
    if (not source or not Path(source).exists()) and record.accuracy is None:
        raise NasError(  # nas never trained it: train-winners would refuse it
            f"trial {trial.number} was not trained by nas (a rejection, a failure or your own "
            "objective's trial), so it has no weights; export without --weights and train "
            "the architecture your way"
        )
    if not source or not Path(source).exists():
        raise NasError(
            f"trial {trial.number} has no trained weights; run nas train-winners first "
            "(or export without --weights)"
        )
    again = f"train trial {trial.number} again with nas train-winners"
    state = read_torch(Path(source), "the trained weights", again)
    if isinstance(state, dict) and "ema" in state:
        state = state["ema"] or state["model"]
    model = build_model(arch)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:  # another model's, or no state
        raise NasError(
            f"the trained weights {source} are not trial {trial.number}'s "
            f"({first_line(exc)}); {again}"
        ) from None
    model.eval()
    weights_path, onnx_path = path.with_suffix(".pt"), path.with_suffix(".onnx")
    prepare_folder(path)
    try:
        torch.save(model.state_dict(), weights_path)
    except (OSError, RuntimeError) as exc:
        raise NasError(f"cannot write {weights_path}: {exc}") from None
    # batch 2 as the example: torch.export fixes a dimension that is 1 in its example
    x = torch.zeros(2, arch.in_channels, arch.input_size, arch.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its steps
                torch.onnx.export(
                    model,
                    (x,),
                    str(onnx_path),
                    dynamo=True,
                    external_data=False,
                    input_names=["images"],
                    output_names=["logits"],
                    dynamic_shapes=({0: torch.export.Dim("batch")},),  # any batch size
                )
        except Exception as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise NasError(f"ONNX export of trial {trial.number} failed: {first}") from None
        finally:
            logging.disable(previous)
    return weights_path, onnx_path
