"""``nas export``: an architecture as a config that rebuilds the identical model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.cli.common import open_named_study
from nas.cli.main import COMMANDS, Command
from nas.cli.output import console
from nas.errors import NasError
from nas.objectives import METRICS
from nas.study.settings import add_study_flags

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def _export_args(p: argparse.ArgumentParser) -> None:
    add_study_flags(p)
    pick = p.add_mutually_exclusive_group(required=True)
    pick.add_argument(
        "--best",
        action="store_true",
        help="the best trial, as every command names it: highest validation accuracy after "
        "full training if any winner was fully trained, else highest proxy accuracy (a "
        "candidate trained several times by its mean); a tie goes to the cheaper, then the "
        "earlier trial; the test accuracy never chooses",
    )
    pick.add_argument("--trial", type=int, metavar="N", help="trial number N")
    pick.add_argument(
        "--pareto",
        action="store_true",
        help="every Pareto-optimal trial, one file each in the --out folder",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="file to write (a folder with --pareto)",
    )
    p.add_argument(
        "--format",
        choices=["json", "yaml"],
        default=None,
        help="file format (default: from the file name, else json)",
    )
    p.add_argument(
        "--weights",
        action="store_true",
        help="also write the trained weights (.pt) and an ONNX file (.onnx)",
    )


#: The endings of a file name, which a ``--pareto`` folder should not have.
SUFFIXES = (".json", ".yaml", ".yml")


def _export_picks(
    args: argparse.Namespace, study: optuna.Study, fmt: str
) -> list[tuple[optuna.trial.FrozenTrial, str, Path]]:
    """What to export: (trial, the rule that chose it, the file to write), every file
    checked before anything is written."""
    from nas.files import check_writable
    from nas.study.stats import best_of
    from nas.winners import select_winners

    if args.pareto:
        named = not args.out.exists() and args.out.suffix.lower() in SUFFIXES
        if (args.out.exists() and not args.out.is_dir()) or named:
            raise NasError(
                f"--out {args.out} is a file{'' if args.out.exists() else ' name'}: with "
                "--pareto, --out is a folder that receives one file per Pareto-optimal trial "
                "(--out front/)"
            )
        front = select_winners(study, None)
        picks = [(t, "Pareto-optimal", args.out / f"trial-{t.number}.{fmt}") for t in front]
    elif args.trial is not None:
        picks = [_asked_for(study, args.trial, args.out)]
    else:
        best, rule = best_of(study)
        console.print(f"best: trial {best.number}, chosen by {rule}")
        picks = [(best, rule, args.out)]
    for _, _, path in picks:  # before anything is written (the .pt and .onnx go beside)
        check_writable(path)
    return picks


def _asked_for(
    study: optuna.Study, number: int, out: Path
) -> tuple[optuna.trial.FrozenTrial, str, Path]:
    """``--trial N``: the trial, if the study has it with an architecture."""
    from nas.study.record import TrialRecord

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        span = f"0..{max(trials)}" if trials else "none"
        raise NasError(f"study {study.study_name!r} has no trial {number} (its trials: {span})")
    chosen = trials[number]
    if TrialRecord(chosen).arch is None:
        raise NasError(f"trial {number} has no architecture recorded (state {chosen.state.name})")
    return chosen, f"trial {number}, asked for", out


def _trained(trial: FrozenTrial, meta: dict[str, Any]) -> str:
    """What training said of an exported trial: its proxy accuracy, or why it has none (a
    rejected candidate, a failed one, one scored by the user's own objective)."""
    from optuna.trial import TrialState

    from nas.study.record import TrialRecord

    if meta["proxy_accuracy"] is not None and "proxy_runs" in meta:
        runs = meta["proxy_runs"]
        return (
            f"proxy val acc {meta['proxy_accuracy']:.4f} in this run, {runs['mean']:.4f} the mean "
            f"of its {len(runs['trials'])} runs (trials {', '.join(map(str, runs['trials']))}), "
            "by which it is ranked"
        )
    if meta["proxy_accuracy"] is not None:
        return f"proxy val acc {meta['proxy_accuracy']:.4f}"
    r = TrialRecord(trial)
    if r.rejected:
        why = f"rejected: {r.rejected}"
    elif r.fail_reason:
        why = f"failed: {r.fail_reason}"
    elif r.not_trained:
        why = "not trained: the study had enough trained trials"
    elif trial.state == TrialState.COMPLETE and trial.values:
        why = "scored by your own objective: " + ", ".join(f"{v:.4g}" for v in trial.values)
    else:
        why = trial.state.name
    return f"no proxy accuracy ({why})"


def _export_run(args: argparse.Namespace) -> int:
    from nas.config import ArchConfig
    from nas.export import export_document, export_weights, load_snippet, write_document

    study, address = open_named_study(args, read_only=True)
    fmt = args.format or ("yaml" if args.out.suffix.lower() in (".yaml", ".yml") else "json")
    picks = _export_picks(args, study, fmt)
    first_normalize: dict[str, Any] | None = None  # the first pick's, for the printed snippet
    for trial, rule, path in picks:
        doc = export_document(study, trial, rule, address.url)
        weights = None
        if args.weights:
            arch = ArchConfig.from_dict(doc["arch"])
            weights_path, onnx_path = export_weights(trial, arch, path)
            doc["meta"]["weights"] = weights_path.name
            doc["meta"]["onnx"] = onnx_path.name
            weights = weights_path.name
        normalize = doc["meta"]["input"] if "mean" in doc["meta"]["input"] else None
        doc["load"] = "# in the folder of this file\n" + load_snippet(path.name, weights, normalize)
        if path == picks[0][2]:
            first_normalize = normalize
        write_document(doc, path, fmt)
        meta = doc["meta"]
        measured = ", ".join(
            f"{m['value']:,.0f} {m['label']}" if not m["unit"] else METRICS[name].show(m["value"])
            for name, m in meta["metrics"].items()
            if name != "accuracy"
        )
        if "hardware" in meta:
            measured += f" (measured on {meta['hardware']['described']})"
        console.print(
            f"wrote {path}: trial {trial.number}, {measured}, {_trained(trial, meta)}"
            + (
                f", full val acc {meta['full_val_accuracy']:.4f}, "
                f"full test acc {meta['full_accuracy']:.4f}"
                if meta["full_val_accuracy"] is not None and meta["full_accuracy"] is not None
                else ""
            ),
            markup=False,
        )
        if weights:
            console.print(
                f"wrote {path.with_suffix('.pt')} and {path.with_suffix('.onnx')}", markup=False
            )
    first = picks[0][2]
    weights_file = str(first.with_suffix(".pt")) if args.weights else None
    console.print("load it with:" if len(picks) == 1 else "load each with, e.g. the first:")
    snippet = load_snippet(str(first), weights_file, first_normalize)
    console.print(snippet, markup=False, soft_wrap=True, end="")
    return 0


COMMANDS.add(
    "export",
    Command(
        name="export",
        help="export an architecture as a config that rebuilds the identical model",
        description=(
            "Write a trial's architecture as JSON (or YAML) that nas.build_model and\n"
            "'nas count --config' read back into the identical model (same params, same FLOPs),\n"
            "with metadata: params, FLOPs, proxy and full accuracy, study, trial, package\n"
            "versions, the per-stage breakdown. --weights adds the trained weights and ONNX."
        ),
        examples=(
            "  nas export --storage sqlite:///s.db --study demo --best --out best.json\n"
            "  nas export --study demo --trial 7 --out t7.yaml\n"
            "  nas export --study demo --best --weights --out exports/best.json\n"
            "  nas export --study demo --pareto --out exports/\n"
        ),
        add_arguments=_export_args,
        run=_export_run,
    ),
)
