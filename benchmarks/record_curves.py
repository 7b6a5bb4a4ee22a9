"""Record real proxy learning curves once, for replaying the early stopper on them.

Runs ``nas search`` (the product's own command, as a subprocess) with the random sampler and
early stopping off, so that every candidate trains every epoch, then writes each trained
candidate's per-epoch validation accuracy, parameters, FLOPs and architecture to a small JSON
file (``benchmarks/data/proxy_curves.json`` by default) together with the command and the
settings that produced them. ``benchmarks/stopping_replay.py`` replays the stopper on it.

    OMP_NUM_THREADS=1 python benchmarks/record_curves.py --data-dir /tmp/cifar10

The study database is kept (``--storage``), so an interrupted recording resumes where it
stopped when run again with the same arguments; the JSON is written atomically at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna

from nas.files import write_json_atomic
from nas.study.record import TrialRecord

DEFAULT_OUT = Path(__file__).parent / "data" / "proxy_curves.json"


def search_command(args: argparse.Namespace) -> list[str]:
    """The ``nas search`` command that trains every candidate for every epoch."""
    return [
        sys.executable, "-m", "nas", "search",
        "--space", args.space, "--param-limit", args.param_limit,
        "--dataset", "imagefolder", "--data-dir", args.data_dir, "--device", "cpu",
        "--sampler", "random", "--early-stopping", "off",
        "--proxy-epochs", str(args.epochs), "--proxy-subset", str(args.subset),
        "--proxy-val", str(args.val), "--trials", str(args.candidates),
        "--seed", str(args.seed), "--storage", args.storage, "--study", args.study, "--quiet",
    ]  # fmt: skip


def curves(study: optuna.Study) -> list[dict[str, Any]]:
    """Every candidate trained to the last epoch: its curve, counts and architecture."""
    out = []
    for t in study.get_trials(deepcopy=False):
        r = TrialRecord.of(t)
        if r.state.name != "COMPLETE" or not r.curve:
            continue
        out.append(
            {"trial": r.number, "params": r.params, "flops": r.flops, "curve": list(r.curve),
             "seconds": r.seconds, "arch": r.arch}
        )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True, help="CIFAR-10 as an image folder")
    p.add_argument("--space", default="search_spaces/small_cifar.toml")
    p.add_argument("--param-limit", default="150k")
    p.add_argument("--candidates", type=int, default=48)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--subset", type=int, default=5000)
    p.add_argument("--val", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", default="sqlite:///curves.db")
    p.add_argument("--study", default="curves")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    command = search_command(args)
    started = dt.datetime.now(dt.UTC)
    code = subprocess.call(command)
    if code != 0:
        print(f"nas search exited with {code}; run again to resume", file=sys.stderr)
        return code
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    found = curves(study)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "storage", "data_dir")}
    doc = {
        "what": "validation accuracy after every epoch of real CIFAR-10 proxy training",
        "command": " ".join(["python", "benchmarks/record_curves.py", *(argv or sys.argv[1:])]),
        "settings": settings,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "started": started.isoformat(timespec="seconds"),
        "candidates": found,
    }
    write_json_atomic(args.out, doc)
    print(f"{len(found)} curves of {args.epochs} epochs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
