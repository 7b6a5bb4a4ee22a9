"""After a search: ``nas train-winners``, ``nas export``, ``nas report``, ``nas dashboard``."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socketserver
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from nas.cli.main import COMMANDS, Command
from nas.cli.output import EpochProgress, console, err_console, fmt_int, print_hint, table
from nas.cli.search import add_data_args, add_study_args, raise_interrupt
from nas.errors import NasError, StorageError
from nas.study import record as rec
from nas.training.recipe import SCHEDULES, full_recipe
from nas.units import human, plural

if TYPE_CHECKING:
    import optuna

    from nas.study.address import StudyAddress


def check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before any work is done."""
    target = path.expanduser().absolute()
    if target.is_dir():
        raise NasError(f"cannot write {path}: it is a folder")
    existing = target if target.exists() else target.parent
    while not existing.exists():  # missing folders are created: the first existing one counts
        existing = existing.parent
    if not existing.is_dir() and existing != target:
        raise NasError(f"cannot write {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise NasError(f"cannot write {path}: permission denied")


def open_named_study(args: argparse.Namespace) -> tuple[optuna.Study, StudyAddress]:
    """The study named by --study in --storage (or its default SQLite file), and where it
    lives; a URL that cannot name a database is refused in one line (see
    :class:`~nas.study.address.StudyAddress`)."""
    from nas.study.address import StudyAddress
    from nas.study.storage import load_study

    address = StudyAddress.of(args.storage, args.study)
    if not args.storage and not address.exists():
        raise StorageError(f"no study database {address.sqlite_path} here; pass --storage URL")
    return load_study(address.open(must_exist=True), args.study), address


# ------------------------------------------------------------------ train-winners
def _train_args(p: argparse.ArgumentParser) -> None:
    add_study_args(p, study="required")
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
    add_data_args(p)


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
            changes[field] = off
    return full_recipe(args.epochs).replace(**changes)


def _train_run(args: argparse.Namespace) -> int:
    from nas.config import ArchConfig
    from nas.data import load_dataset, validation_split
    from nas.search.stats import accuracy_of
    from nas.training import EpochResult, resolve_device
    from nas.winners import record_fidelity, require_test_split, select_winners, train_winner

    if args.top_k is not None and args.top_k < 1:
        raise NasError(f"--top-k must be at least 1, got {args.top_k}")
    recipe = recipe_from_args(args)
    study, address = open_named_study(args)
    winners = select_winners(study, args.top_k)
    front = select_winners(study, None)
    if args.top_k and len(front) < args.top_k <= len(winners):
        console.print(
            f"the Pareto front holds {plural(len(front), 'trial')}; the next fronts fill "
            f"--top-k {args.top_k}"
        )
    searched = study.user_attrs.get(rec.SEARCH_SETTINGS, {})
    dataset = getattr(args, "dataset", None) or searched.get("dataset", "cifar10")
    data_dir = getattr(args, "data_dir", None) or searched.get("data_dir")
    data = load_dataset(dataset, data_dir)
    device = resolve_device(getattr(args, "device", None) or "auto")
    out_dir = args.out_dir or Path("studies") / f"{study.study_name}-winners"
    val_fraction = float(searched.get("val_fraction", 0.1))
    require_test_split(data)
    split = validation_split(len(data.train_y), val_fraction)
    console.print(
        f"training {plural(len(winners), 'winner')} of study {study.study_name!r} for "
        f"{plural(recipe.epochs, 'epoch')} on {plural(len(split.train), 'image')}; validation "
        f"on {plural(len(split.val), 'held-out training image')} after every epoch; the "
        f"{plural(len(data.test_y), 'test image')} are scored once per winner, at the end; "
        f"on {device}"
    )
    results = []
    for trial in winners:
        arch = ArchConfig.from_dict(trial.user_attrs[rec.ARCH])
        console.print(
            f"[bold]trial {trial.number}[/]: {arch.summary()} "
            f"({human(trial.user_attrs['params'])} params, proxy val acc "
            f"{accuracy_of(trial):.4f})"
        )

        def on_epoch(e: EpochResult, n: int = trial.number) -> None:
            console.print(
                f"  trial {n} epoch {e.epoch}/{e.epochs}: val acc {e.accuracy:.4f}, "
                f"loss {e.loss:.3f}, {e.seconds:.1f}s"
            )

        with EpochProgress(f"trial {trial.number}") as progress:
            result = train_winner(
                study,
                trial,
                data,
                recipe,
                device=device,
                seed=args.seed,
                out_dir=out_dir,
                val_fraction=val_fraction,
                on_epoch=on_epoch,
                on_progress=progress,
                compile=args.compile,
            )
        if result.resumed_from:
            console.print(f"  resumed from the checkpoint after epoch {result.resumed_from}")
        results.append(result)
    fidelity = record_fidelity(study.study_name, address.open(must_exist=True))
    rows = [
        [
            r.trial,
            f"{r.proxy_accuracy:.4f}",
            f"{r.val_accuracy:.4f}",
            f"{r.full_accuracy:.4f}",
            r.epochs,
            f"{r.seconds:.0f}s",
            str(r.checkpoint),
        ]
        for r in results
    ]
    console.print(
        table(
            "Winners (validation chooses; test reported once"
            + (", EMA weights)" if recipe.ema_decay else ")"),
            [
                "trial",
                "proxy val acc",
                "full val acc",
                "full test acc",
                "epochs",
                "time",
                "checkpoint",
            ],
            rows,
            right=(0, 1, 2, 3, 4, 5),
        )
    )
    tau = fidelity.get("tau")
    tau_s = "not enough fully trained winners (need 2)" if tau is None else f"{tau:+.3f}"
    console.print(
        f"proxy fidelity: Kendall's tau between proxy and full validation accuracy = {tau_s} "
        f"over {plural(fidelity.get('n', 0), 'fully trained winner')} of this study"
    )
    export = ["nas", "export", "--storage", address.url, "--study", study.study_name]
    print_hint(
        [*export, "--best", "--weights", "--out", str(out_dir / "best.json")],
        "the config of the winner with the best validation accuracy, its trained weights "
        "(.pt) and an ONNX file, and how to load them",
    )
    return 0


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
            "      --device cpu                 # a quick check on a CPU, ~1 min\n"
        ),
        add_arguments=_train_args,
        run=_train_run,
    ),
)


# ------------------------------------------------------------------ export
def _export_args(p: argparse.ArgumentParser) -> None:
    add_study_args(p, study="required")
    pick = p.add_mutually_exclusive_group(required=True)
    pick.add_argument(
        "--best",
        action="store_true",
        help="highest validation accuracy after full training if any winner was fully "
        "trained, else highest proxy accuracy (the test accuracy never chooses)",
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


def _export_picks(
    args: argparse.Namespace, study: optuna.Study, fmt: str
) -> list[tuple[optuna.trial.FrozenTrial, str, Path]]:
    """What to export: (trial, the rule that chose it, the file to write)."""
    from nas.export import choose_best
    from nas.winners import select_winners, trained_trials

    if args.pareto:
        front = select_winners(study, None)
        return [(t, "Pareto-optimal", args.out / f"trial-{t.number}.{fmt}") for t in front]
    if args.trial is not None:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        if args.trial not in trials:
            span = f"0..{max(trials)}" if trials else "none"
            raise NasError(
                f"study {study.study_name!r} has no trial {args.trial} (its trials: {span})"
            )
        chosen = trials[args.trial]
        if rec.ARCH not in chosen.user_attrs:
            raise NasError(
                f"trial {args.trial} has no architecture recorded (state {chosen.state.name})"
            )
        return [(chosen, f"trial {args.trial}, asked for", args.out)]
    best, rule = choose_best(trained_trials(study))
    console.print(f"best: trial {best.number}, chosen by {rule}")
    return [(best, rule, args.out)]


def _export_run(args: argparse.Namespace) -> int:
    from nas.config import ArchConfig
    from nas.export import export_document, export_weights, load_snippet, write_document

    study, address = open_named_study(args)
    fmt = args.format or ("yaml" if args.out.suffix.lower() in (".yaml", ".yml") else "json")
    picks = _export_picks(args, study, fmt)
    for trial, rule, path in picks:
        doc = export_document(study, trial, rule, address.url)
        weights = None
        if args.weights:
            arch = ArchConfig.from_dict(doc["arch"])
            weights_path, onnx_path = export_weights(trial, arch, path)
            doc["meta"]["weights"] = weights_path.name
            doc["meta"]["onnx"] = onnx_path.name
            weights = weights_path.name
        doc["load"] = load_snippet(path.name, weights)  # run from the file's folder
        write_document(doc, path, fmt)
        meta = doc["meta"]
        console.print(
            f"wrote {path}: trial {trial.number}, {fmt_int(meta['params'])} params, "
            f"{human(meta['flops'])} FLOPs, proxy val acc {meta['proxy_accuracy']:.4f}"
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
    console.print(load_snippet(str(first), weights_file), markup=False, soft_wrap=True, end="")
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


# ------------------------------------------------------------------ report
def _report_args(p: argparse.ArgumentParser) -> None:
    add_study_args(p, study="required")
    p.add_argument("--out", type=Path, required=True, metavar="PATH", help="HTML file to write")


def _report_run(args: argparse.Namespace) -> int:
    from nas.report import write_report
    from nas.winners import trained_trials

    check_writable(Path(args.out))  # before minutes of figures, not after
    study, _ = open_named_study(args)
    trained_trials(study)  # a study with nothing trained is a user error
    try:
        path = write_report(study, args.out)
    except OSError as exc:
        raise NasError(f"cannot write {args.out}: {exc.strerror}") from None
    console.print(f"wrote {path} ({path.stat().st_size // 1024} KiB, one self-contained page)")
    return 0


COMMANDS.add(
    "report",
    Command(
        name="report",
        help="write one self-contained HTML page of plotly figures about a study",
        description=(
            "Pareto fronts (accuracy vs params and vs FLOPs, rejected and stopped candidates\n"
            "shown apart), optimization history, accuracy by attention type and by placement,\n"
            "hyperparameter importances, proxy vs full accuracy with Kendall's tau, rejection\n"
            "rate over time, learning curves, and a table of the winners with their configs."
        ),
        examples="  nas report --storage sqlite:///s.db --study demo --out report.html\n",
        add_arguments=_report_args,
        run=_report_run,
    ),
)


# ------------------------------------------------------------------ dashboard
def port_number(text: str) -> int:
    """A TCP port for argparse: an integer from 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not between 0 and 65535")
    return port


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    add_study_args(p, study="none")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=port_number, default=8080, help="port, 0 for any free one (8080)")
    p.add_argument(
        "--no-annotate",
        action="store_true",
        help="do not attach figures and winner notes to the studies",
    )


def _listen(host: str, port: int) -> _ThreadingServer:
    """Take the port before any work is done: one in use is refused in one line at once. The
    server answers nothing until its application is set."""

    def not_ready(environ: Any, start_response: Any) -> list[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"starting"]

    try:
        server = make_server(
            host, port, not_ready, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise NasError(f"port {port} on {host} is in use; pass another --port") from None
        raise NasError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    assert isinstance(server, _ThreadingServer)
    return server


def _dashboard_url(args: argparse.Namespace) -> str:
    """--storage, else the one database in studies/."""
    from nas.study.storage import STUDIES_DIR, sqlite_url

    if args.storage:
        return str(args.storage)
    dbs = sorted(STUDIES_DIR.glob("*.db"))
    if len(dbs) != 1:
        raise StorageError(
            f"pass --storage URL (studies/ holds {len(dbs)} databases)"
            if dbs
            else "no study database in studies/; pass --storage URL"
        )
    return sqlite_url(dbs[0])


def _annotate_all(storage: Any) -> int:
    """Store the report's figures and the winner notes with every study; returns how many
    studies there are."""
    import optuna

    from nas.dashboard import annotate

    summaries = optuna.get_all_study_summaries(storage)
    for s in summaries:
        study = optuna.load_study(study_name=s.study_name, storage=storage)
        figures, notes, kept = annotate(study)
        edited = f" ({kept} edited in the dashboard, kept as they are)" if kept else ""
        err_console.print(
            f"study {s.study_name}: attached {len(figures)} figures and "
            f"{len(notes)} winner notes{edited}",
            markup=False,
        )
    return len(summaries)


def _dashboard_run(args: argparse.Namespace) -> int:
    import optuna
    from optuna_dashboard import wsgi

    from nas.dashboard import install_dashboard_view
    from nas.study.address import StudyAddress

    address = StudyAddress(_dashboard_url(args), name="")  # the database: every study in it
    server = _listen(args.host, args.port)
    try:
        storage = address.open(must_exist=True)
        if args.no_annotate:
            studies = len(optuna.get_all_study_summaries(storage))
        else:
            studies = _annotate_all(storage)
        install_dashboard_view()  # long attributes shortened, the Pareto fronts first
        server.set_app(wsgi(storage))
        host, port = str(server.server_address[0]), int(server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        where = " (all interfaces)" if host in ("0.0.0.0", "::") else ""
        console.print(
            f"optuna-dashboard for {address.safe} ({plural(studies, 'study', 'studies')}): "
            f"http://{shown}:{port}/dashboard/{where}  (Ctrl-C stops it)",
            markup=False,
            soft_wrap=True,
        )
        signal.signal(signal.SIGTERM, raise_interrupt)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            console.print("dashboard stopped")
    finally:
        server.server_close()
    return 0


COMMANDS.add(
    "dashboard",
    Command(
        name="dashboard",
        help="serve optuna-dashboard on a study database, with figures and winner notes",
        description=(
            "Start optuna-dashboard on the study storage. The report's figures are stored with\n"
            "each study (optuna-dashboard shows them), and each winner gets a note with its\n"
            "config and scores. Ctrl-C stops it."
        ),
        examples=(
            "  nas dashboard --storage sqlite:///s.db\n"
            "  nas dashboard --storage postgresql+psycopg://nas@db/nas --host 0.0.0.0 --port 8081\n"
        ),
        add_arguments=_dashboard_args,
        run=_dashboard_run,
    ),
)
