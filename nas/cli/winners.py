"""``nas train-winners``: train the Pareto winners for real, validation chooses, test once."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.cli.common import add_data_args, open_named_study
from nas.cli.main import COMMANDS, Command
from nas.cli.output import EpochProgress, console, err_console, print_hint, table
from nas.errors import NasError
from nas.hardware.context import study_hardware_text
from nas.objectives import costs, hardware
from nas.study.settings import add_study_flags
from nas.training.recipe import SCHEDULES, full_recipe
from nas.units import human, plural

if TYPE_CHECKING:
    import optuna

    from nas.data import ImageData
    from nas.study.address import StudyAddress
    from nas.training import Recipe
    from nas.winners import WinnerResult


def _train_args(p: argparse.ArgumentParser) -> None:
    add_study_flags(p)
    pick = p.add_mutually_exclusive_group(required=True)
    pick.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help="the K Pareto-optimal trials with the best proxy accuracy (the next fronts "
        "fill up when the first holds fewer than K)",
    )
    pick.add_argument("--pareto", action="store_true", help="every Pareto-optimal trial")
    p.add_argument("--epochs", type=int, required=True, metavar="E", help="epochs per winner")
    p.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="checkpoints and weights (default: studies/STUDY-winners)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed (default 0): one data order and augmentation for all winners; with the "
        "trial number, each winner's initial weights",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="forget the results of winners fully trained with other settings (another "
        "recipe or number of epochs; their files stay, but their checkpoint in --out-dir is "
        "started over) and train with these; without it such a run is refused, since nas "
        "export --best compares the winners' full accuracies",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="train through torch.compile (the first steps compile, for a minute or more; "
        "worth it for long runs on a GPU; off by default)",
    )
    r = p.add_argument_group("recipe (seed 001's unless changed)")
    r.add_argument("--batch-size", type=int, metavar="B", help="images per step (128)")
    r.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (0.1)")
    r.add_argument("--momentum", type=float, metavar="M", help="SGD momentum (0.9)")
    r.add_argument("--no-nesterov", action="store_true", help="plain momentum")
    r.add_argument("--weight-decay", type=float, metavar="WD", help="weight decay (5e-4)")
    r.add_argument("--label-smoothing", type=float, metavar="LS", help="(0.1)")
    r.add_argument("--schedule", choices=SCHEDULES.names(), help="decay (cosine)")
    r.add_argument("--warmup", type=float, metavar="F", help="warm-up fraction of steps (0.02)")
    r.add_argument("--mixup-alpha", type=float, metavar="A", help="mixup Beta alpha (0.2)")
    r.add_argument("--no-mixup", action="store_true", help="turn mixup off")
    r.add_argument("--cutmix-alpha", type=float, metavar="A", help="cutmix Beta alpha (1.0)")
    r.add_argument("--no-cutmix", action="store_true", help="turn cutmix off")
    r.add_argument("--grad-clip", type=float, metavar="N", help="gradient norm clip (5.0)")
    r.add_argument("--no-grad-clip", action="store_true", help="turn clipping off")
    r.add_argument("--ema-decay", type=float, metavar="D", help="EMA decay (0.999)")
    r.add_argument("--no-ema", action="store_true", help="evaluate the raw weights, no EMA")
    r.add_argument("--no-crop", action="store_true", help="no random crop")
    r.add_argument("--no-flip", action="store_true", help="no horizontal flip")
    add_data_args(p, of_study=True)


def recipe_from_args(args: argparse.Namespace) -> Any:
    """Seed 001's recipe with the command line's changes."""
    changes: dict[str, Any] = {}
    for flag, field in (
        ("batch_size", "batch_size"),
        ("lr", "lr"),
        ("momentum", "momentum"),
        ("weight_decay", "weight_decay"),
        ("label_smoothing", "label_smoothing"),
        ("schedule", "schedule"),
        ("warmup", "warmup"),
        ("mixup_alpha", "mixup_alpha"),
        ("cutmix_alpha", "cutmix_alpha"),
        ("grad_clip", "grad_clip"),
        ("ema_decay", "ema_decay"),
    ):
        if getattr(args, flag) is not None:
            changes[field] = getattr(args, flag)
    for flag, field, off in (
        ("no_nesterov", "nesterov", False),
        ("no_mixup", "mixup_alpha", 0.0),
        ("no_cutmix", "cutmix_alpha", 0.0),
        ("no_grad_clip", "grad_clip", None),
        ("no_ema", "ema_decay", None),
        ("no_crop", "crop_padding", 0),
        ("no_flip", "flip", False),
    ):
        if getattr(args, flag):
            if field in changes:  # --no-mixup --mixup-alpha 0.5: which one was meant?
                given = "--" + field.replace("_", "-")
                raise NasError(
                    f"--{flag.replace('_', '-')} and {given} contradict each other: give one"
                )
            changes[field] = off
    return full_recipe(args.epochs).replace(**changes)


def _train_run(args: argparse.Namespace) -> int:
    from nas.winners import check_one_recipe, forget_results, record_fidelity, select_winners

    if args.top_k is not None and args.top_k < 1:
        raise NasError(f"--top-k must be at least 1, got {args.top_k}")
    recipe = recipe_from_args(args)
    study, address = open_named_study(args)
    winners = select_winners(study, args.top_k)
    replaced = check_one_recipe(study, recipe, args.replace)  # refused before the data loads
    front = select_winners(study, None)
    if args.top_k and len(winners) < args.top_k:
        console.print(
            f"the study has {plural(len(winners), 'trained candidate')}, fewer than --top-k "
            f"{args.top_k}: all of them are trained"
        )
    elif args.top_k and len(front) < args.top_k:
        console.print(
            f"the Pareto front holds {plural(len(front), 'trial')}; the next fronts fill "
            f"--top-k {args.top_k}"
        )
    run = _WinnersRun(args, study, recipe, len(winners))
    if replaced:  # the data and the output folder are checked: train with these settings
        forget_results(study, replaced, run.out_dir)
        console.print(
            f"forgot the full-training results of {plural(len(replaced), 'trial')} "
            f"({', '.join(str(t.number) for t in replaced)}), trained with other settings"
        )
    results = [run.train(trial) for trial in winners]
    fidelity = record_fidelity(study.study_name, address.open(must_exist=True))
    _print_results(results, recipe, fidelity, {t.number: t for t in winners})
    measured_on = study_hardware_text(study)
    if measured_on:
        console.print(measured_on, markup=False)
    _print_next(address, study, run.out_dir)
    return 0


def searched_data(
    args: argparse.Namespace, searched: Mapping[str, Any], study: str
) -> tuple[str, str | None]:
    """The data set and folder the study was searched on: ``--dataset`` may only repeat the
    recorded one; ``--data-dir`` may name another folder only where the recorded one is gone
    (the data moved to this machine), so that the winners are chosen on the split their
    proxies were scored on; a folder that does not exist is left to the data layer, which
    says so.

    Raises:
        NasError: for another data set, or another folder while the recorded one exists.
    """
    from nas.settings import resolved_path

    dataset = searched.get("dataset", "cifar10")
    given = getattr(args, "dataset", None)
    if given is not None and given != dataset:
        raise NasError(
            f"study {study!r} was searched on --dataset {dataset}, not {given}: its winners "
            "are trained on the same data; leave --dataset out"
        )
    recorded, given = searched.get("data_dir"), resolved_path(getattr(args, "data_dir", None))
    if given is None or given == recorded:
        return dataset, recorded
    if recorded is not None and Path(recorded).exists() and Path(given).exists():
        raise NasError(
            f"study {study!r} was searched on --data-dir {recorded}, not {given}: leave "
            "--data-dir out (another folder is taken only where the recorded one is gone, "
            "the data having moved)"
        )
    return dataset, given


class _WinnersRun:
    """What every winner of one ``train-winners`` run shares: data, device, split, output."""

    def __init__(
        self, args: argparse.Namespace, study: optuna.Study, recipe: Recipe, winners: int
    ) -> None:
        from nas.data import load_dataset, validation_split
        from nas.data.datasets import DATA_KEY, FAKE_WARNING, check_same_data
        from nas.files import check_dir
        from nas.study.record import StudyRecord
        from nas.training import resolve_device
        from nas.winners import require_test_split

        out_dir: Path = args.out_dir or Path("studies") / f"{study.study_name}-winners"
        self.out_dir = check_dir(out_dir)  # before the data: a bad folder fails at once
        searched = StudyRecord(study).settings
        dataset, data_dir = searched_data(args, searched, study.study_name)
        self.args, self.study, self.recipe = args, study, recipe
        self.data: ImageData = load_dataset(dataset, data_dir)
        check_same_data(searched.get(DATA_KEY), self.data, study.study_name)
        if dataset == "fake":
            err_console.print(FAKE_WARNING, markup=False)
        self.device = resolve_device(getattr(args, "device", None) or "auto")
        self.val_fraction = float(searched.get("val_fraction", 0.1))
        require_test_split(self.data)
        split = validation_split(len(self.data.train_y), self.val_fraction)
        data = self.data
        console.print(
            f"training {plural(winners, 'winner')} of study {study.study_name!r} for "
            f"{plural(recipe.epochs, 'epoch')} on {plural(len(split.train), 'image')}; "
            f"validation on {plural(len(split.val), 'held-out training image')} after every "
            f"epoch; the {plural(len(data.test_y), 'test image')} are scored once per winner, "
            f"at the end; on {self.device}"
        )
        if recipe.batch_size > len(split.train):  # one step an epoch, of every image
            console.print(
                f"note: --batch-size {recipe.batch_size} is more than the "
                f"{plural(len(split.train), 'training image')}: each epoch is one step"
            )

    def train(self, trial: optuna.trial.FrozenTrial) -> WinnerResult:
        """Train one winner, with a line per epoch and a progress bar inside epochs."""
        from nas.config import ArchConfig
        from nas.study.record import TrialRecord
        from nas.training import EpochResult
        from nas.winners import train_winner

        r = TrialRecord(trial)
        arch = ArchConfig.from_dict(r.arch or {})
        measured = (
            ", ".join(m.show(v) for m in costs() if (v := r.value(m)) is not None)
            or f"{human(r.params or 0)} params"
        )
        console.print(
            f"[bold]trial {trial.number}[/]: {arch.summary()} "
            f"({measured}, proxy val acc {r.accuracy or 0.0:.4f})"
        )

        def on_epoch(e: EpochResult) -> None:
            console.print(
                f"  trial {trial.number} epoch {e.epoch}/{e.epochs}: val acc {e.accuracy:.4f}, "
                f"loss {e.loss:.3f}, {e.seconds:.1f}s"
            )

        with EpochProgress(f"trial {trial.number}") as progress:
            result = train_winner(
                self.study,
                trial,
                self.data,
                self.recipe,
                device=self.device,
                seed=self.args.seed,
                out_dir=self.out_dir,
                val_fraction=self.val_fraction,
                on_epoch=on_epoch,
                on_progress=progress,
                compile=self.args.compile,
            )
        if result.resumed_from:
            console.print(f"  resumed from the checkpoint after epoch {result.resumed_from}")
        return result


def _print_results(
    results: list[WinnerResult],
    recipe: Recipe,
    fidelity: Any,
    trials: Mapping[int, optuna.trial.FrozenTrial],
) -> None:
    """The winners' table (with the latency and memory measured of them, if any) and the
    proxy fidelity it gives."""
    from nas.proxy.fidelity import fidelity_text
    from nas.study.record import TrialRecord

    records = {n: TrialRecord(t) for n, t in trials.items()}
    shown = [m for m in hardware() if any(r.value(m) is not None for r in records.values())]

    def measured(trial: int) -> list[str]:
        values = [records[trial].value(m) if trial in records else None for m in shown]
        return [m.fmt(v) if v is not None else "-" for m, v in zip(shown, values, strict=True)]

    rows = [
        [
            r.trial,
            f"{r.proxy_accuracy:.4f}",
            f"{r.val_accuracy:.4f}",
            f"{r.full_accuracy:.4f}",
            *measured(r.trial),
            r.epochs,
            f"{r.seconds:.0f}s",
            str(r.checkpoint),
        ]
        for r in results
    ]
    header = ["trial", "proxy val acc", "full val acc", "full test acc"]
    header += [m.heading for m in shown] + ["epochs", "training time"]
    console.print(
        table(
            "Winners (validation chooses; test reported once"
            + (", EMA weights)" if recipe.ema_decay else ")"),
            [*header, "checkpoint"],
            rows,
            right=tuple(range(len(header))),
        )
    )
    console.print(
        "proxy fidelity (proxy against full validation accuracy, over this study's fully "
        f"trained winners): {fidelity_text(fidelity)}",
        markup=False,
        soft_wrap=True,
    )


def _print_next(address: StudyAddress, study: optuna.Study, out_dir: Path) -> None:
    export = ["nas", "export", "--storage", address.url, "--study", study.study_name]
    print_hint(
        [*export, "--best", "--weights", "--out", str(out_dir / "best.json")],
        "the config of the winner with the best validation accuracy, its trained weights "
        "(.pt) and an ONNX file, and how to load them",
    )


COMMANDS.add(
    "train-winners",
    Command(
        name="train-winners",
        help="train the Pareto winners for real: validation chooses, test is scored once",
        description=(
            "Pick the Pareto-optimal trained trials of a study (accuracy against its second\n"
            "objective; --top-k keeps the K best by proxy accuracy) and train each with seed\n"
            "001's recipe: SGD momentum 0.9 with Nesterov, weight decay 5e-4, cosine schedule,\n"
            "label smoothing 0.1, mixup and cutmix, crop and flip, gradient clipping, EMA of\n"
            "weights (0.999), bf16 autocast on CUDA. Each part can be changed or turned off\n"
            "below. As in seed 001, 10% of the training images (the study's validation split,\n"
            "the images the proxy scored on) are held out: each winner is scored on them after\n"
            "every epoch (full_val_accuracy, what 'nas export --best' chooses by) and on the\n"
            "test split once, at the end (full_accuracy, reported only). All winners see the\n"
            "same batches in the same order. A checkpoint is written after every epoch;\n"
            "re-running continues from it. Kendall's tau between proxy accuracy and full\n"
            "validation accuracy is printed and stored with the study."
        ),
        examples=(
            "  nas train-winners --storage sqlite:///s.db --study demo --top-k 2 --epochs 200\n"
            "  nas train-winners --study c10-5m --pareto --epochs 30 --no-mixup --no-cutmix\n"
            "  nas train-winners --storage sqlite:///s.db --study demo --top-k 1 --epochs 1 \\\n"
            "      --device cpu                 # a first look: 1 epoch each\n"
        ),
        add_arguments=_train_args,
        run=_train_run,
    ),
)
