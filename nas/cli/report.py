"""``nas report`` (one HTML page of figures) and ``nas dashboard`` (optuna-dashboard with
the same figures and winner notes)."""

from __future__ import annotations

import argparse
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

from nas.cli.common import file_arg, open_named_study, raise_interrupt
from nas.cli.main import COMMANDS, Command
from nas.cli.output import console, err_console
from nas.errors import NasError, StorageError
from nas.files import check_writable
from nas.study.settings import add_study_flags
from nas.units import plural


def _report_args(p: argparse.ArgumentParser) -> None:
    add_study_flags(p)
    p.add_argument("--out", type=file_arg, required=True, metavar="PATH", help="HTML file to write")


def _report_run(args: argparse.Namespace) -> int:
    from nas.report import write_report
    from nas.study.stats import trained_trials

    check_writable(Path(args.out))  # before minutes of figures, not after
    study, _ = open_named_study(args, read_only=True)
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
            "Pareto fronts (accuracy vs params, FLOPs, and latency or peak memory when the\n"
            "study measured them; rejected and stopped candidates shown apart), optimization\n"
            "history, accuracy by attention type and by placement, hyperparameter\n"
            "importances, proxy vs full accuracy with Kendall's tau, rejection rate over time,\n"
            "learning curves, and a table of the winners with their configs."
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


def _seconds(text: str) -> float:
    """A duration for argparse: a finite number of seconds, 0 or more."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} seconds: give 0 or more")
    return seconds


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    add_study_flags(p, only_storage=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=port_number, default=8080, help="port, 0 for any free one (8080)")
    p.add_argument(
        "--no-annotate",
        action="store_true",
        help="do not attach figures and winner notes to the studies",
    )
    p.add_argument(
        "--refresh",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="while it runs, bring the figures and notes of each study whose trials changed "
        "(a search or train-winners going on) up to date this often (30; 0: only at start)",
    )


def _dashboard_url(args: argparse.Namespace) -> str:
    """--storage, else the one database in studies/."""
    from nas.study.storage import STUDIES_DIR, sqlite_url

    if args.storage:
        return str(args.storage)
    dbs = sorted(STUDIES_DIR.glob("*.db"))
    if len(dbs) != 1:
        listed = ", ".join(f"--storage {sqlite_url(db)}" for db in dbs[:6])
        more = f" and {len(dbs) - 6} more" if len(dbs) > 6 else ""
        raise StorageError(
            f"studies/ holds {len(dbs)} databases; pass one: {listed}{more}"
            if dbs
            else "no study database in studies/; pass --storage URL"
        )
    return sqlite_url(dbs[0])


class _Annotations:
    """The report's figures and the winner notes of every study nas made in one database,
    attached again whenever a study's trials change (:func:`nas.study.record.study_digest`)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.marks: dict[str, str] = {}

    def update(self, stop: threading.Event | None = None) -> int:
        """Attach them to each study that changed since the last call (every study, the
        first time), until ``stop`` is set; returns how many studies there are."""
        import optuna

        from nas.dashboard import annotate, left_alone
        from nas.study.record import study_digest

        summaries = optuna.get_all_study_summaries(self.storage)
        for s in summaries:
            if stop is not None and stop.is_set():  # Ctrl-C: the study under way is finished
                break
            study = optuna.load_study(study_name=s.study_name, storage=self.storage)
            mark, before = study_digest(study), self.marks.get(s.study_name)
            if mark == before:
                continue
            self.marks[s.study_name] = mark
            why = left_alone(study)
            if why:
                if before is None:
                    _say(f"study {s.study_name}: {why}")
                continue
            try:
                figures, notes, kept = annotate(study)
            except NasError as exc:  # a metric of the user's own, unknown here: this study
                _say(str(exc))  # names the study
                continue
            edited = f" ({kept} edited in the dashboard, kept as they are)" if kept else ""
            done = "attached" if before is None else "brought up to date:"
            _say(
                f"study {s.study_name}: {done} {plural(len(figures), 'figure')} and "
                f"{plural(len(notes), 'winner note')}{edited}"
            )
        return len(summaries)

    def keep_up(self, every: float, stop: threading.Event) -> threading.Thread:
        """Call :meth:`update` every ``every`` seconds, in a thread of its own (returned),
        until ``stop`` is set; a failed update is said in one line and tried again."""

        def run() -> None:
            said = ""
            while not stop.wait(every):
                try:
                    self.update(stop)
                    said = ""
                except Exception as exc:  # the database went away, ...: the page stays up
                    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    if text != said:  # once, not every few seconds
                        _say(f"figures and notes not brought up to date: {text}")
                    said = text

        thread = threading.Thread(target=run, name="nas-annotations", daemon=True)
        thread.start()
        return thread


def _say(text: str) -> None:
    err_console.print(text, markup=False, soft_wrap=True)


def _dashboard_run(args: argparse.Namespace) -> int:
    import optuna
    from optuna_dashboard import wsgi

    from nas.dashboard import install_dashboard_view
    from nas.study.address import StudyAddress

    address = StudyAddress(_dashboard_url(args), name="")  # the database: every study in it
    from nas.cli.server import listen

    server = listen(args.host, args.port)
    try:
        storage = address.open(must_exist=True)
        stop, keeping = threading.Event(), None
        if args.no_annotate:
            studies = len(optuna.get_all_study_summaries(storage))
        else:
            annotations = _Annotations(storage)
            studies = annotations.update()
            if args.refresh > 0:
                keeping = annotations.keep_up(args.refresh, stop)
        # optuna-dashboard's importance (PED-ANOVA) warns of sparse parameters per page view
        warnings.filterwarnings("ignore", module=r"optuna\.importance")
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
            stop.set()
            if keeping is not None:  # a study being brought up to date is finished first
                keeping.join(timeout=60)
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
