"""Early stopping replayed on recorded learning curves: what each setting saves and loses.

The curves (``benchmarks/data/proxy_curves.json``, made by ``benchmarks/record_curves.py``)
are real CIFAR-10 proxy runs trained to the end, one validation accuracy per epoch. Each
replay feeds them to the project's own stopper (:class:`nas.search.early_stop.
SuccessiveHalving`, ``decide`` exactly as a search calls it) in a random arrival order, with
``W`` workers training at once: a candidate starts when a worker is free, takes its recorded
seconds per epoch, and at each rung is compared with every other candidate as far as that
one had got by then (finished, stopped, or still training), as in a running study. A stopped
candidate frees its worker at once.

Per setting (eta, first rung, fewest members at a rung) and worker count, over the orders:
the share of epochs saved, how often the candidate that is best at the last epoch was
stopped, and front recall (the share of the final Pareto front of accuracy against
parameters that was trained to the end). The defaults are the setting that saves at least
40% while stopping the best in at most 1% of the orders; if none does, the trade-off is
printed and the knee is marked.

    python benchmarks/stopping_replay.py                 # 200 orders, 1 and 4 workers
    python benchmarks/stopping_replay.py --orders 500 --epochs 3
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository's root holds `benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from nas.search.early_stop import CurvePoint, SuccessiveHalving

CURVES = Path(__file__).parent / "data" / "proxy_curves.json"


@dataclass(frozen=True)
class Candidate:
    """One recorded proxy run: its parameters, accuracy per epoch and seconds per epoch."""

    number: int
    params: float
    curve: tuple[float, ...]
    epoch_seconds: float


def load(path: Path, epochs: int | None = None) -> list[Candidate]:
    """The recorded candidates, their curves cut to ``epochs`` (None: as recorded)."""
    doc = json.loads(Path(path).read_text())
    out = []
    for c in doc["candidates"]:
        curve = tuple(float(a) for a in c["curve"])
        n = len(curve) if epochs is None else epochs
        out.append(
            Candidate(int(c["trial"]), float(c["params"]), curve[:n], c["seconds"] / len(curve))
        )
    return out


@dataclass(frozen=True)
class Replay:
    """What one arrival order gave: epochs trained, which candidates were stopped."""

    epochs: int
    stopped: frozenset[int]


def replay(
    candidates: list[Candidate], order: list[int], stopper: SuccessiveHalving, workers: int
) -> Replay:
    """Train the candidates in ``order`` with ``workers`` at once (event-driven, see the
    module doc); returns the epochs trained and the candidates stopped early."""
    by = {c.number: c for c in candidates}
    epochs = len(candidates[0].curve)
    rungs = set(stopper.rungs(epochs))
    done: dict[int, int] = {}  # candidate -> epochs it has completed so far
    events: list[tuple[float, int, int]] = []  # (time, candidate, epoch it completes)
    queue = list(order)
    trained, stopped = 0, set()

    def start(now: float) -> None:
        number = queue.pop(0)
        done[number] = 0
        heapq.heappush(events, (now + by[number].epoch_seconds, number, 1))

    for _ in range(min(workers, len(queue))):
        start(0.0)
    while events:
        now, number, epoch = heapq.heappop(events)
        done[number] = epoch
        trained += 1
        c = by[number]
        finished = epoch == epochs
        if epoch in rungs:
            others = [
                CurvePoint(o, (by[o].params,), by[o].curve[: done[o]])
                for o in done
                if o != number and done[o] > 0
            ]
            decision = stopper.decide(others, c.params, epoch, epochs, c.curve[epoch - 1])
            if decision is not None and decision.stop:
                stopped.add(number)
                finished = True
        if finished:
            if queue:
                start(now)
        else:
            heapq.heappush(events, (now + c.epoch_seconds, number, epoch + 1))
    return Replay(trained, frozenset(stopped))


def final_front(candidates: list[Candidate]) -> set[int]:
    """The Pareto front (accuracy at the last epoch up, parameters down) of every candidate."""
    pts = {c.number: (c.curve[-1], c.params) for c in candidates}
    return {
        n
        for n, (a, p) in pts.items()
        if not any(b >= a and q <= p and (b > a or q < p) for m, (b, q) in pts.items() if m != n)
    }


def evaluate(
    candidates: list[Candidate], stopper: SuccessiveHalving, workers: int, orders: int, seed: int
) -> dict[str, Any]:
    """A setting over ``orders`` random arrival orders: epochs saved (median and range), the
    share of orders that stopped the best candidate, and front recall (median, min)."""
    rng = np.random.default_rng(seed)
    total = sum(len(c.curve) for c in candidates)
    best = max(candidates, key=lambda c: c.curve[-1]).number
    front = final_front(candidates)
    saved, best_lost, recall = [], 0, []
    for _ in range(orders):
        order = [int(candidates[i].number) for i in rng.permutation(len(candidates))]
        r = replay(candidates, order, stopper, workers)
        saved.append(1 - r.epochs / total)
        best_lost += best in r.stopped
        recall.append(len(front - r.stopped) / len(front))
    return {
        "saved_median": statistics.median(saved),
        "saved_min": min(saved),
        "saved_max": max(saved),
        "best_stopped": best_lost / orders,
        "front_recall_median": statistics.median(recall),
        "front_recall_min": min(recall),
    }


def knee(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The setting at the knee of the trade-off between epochs saved (up) and the share of
    orders that stop the best (down): on the frontier of the two, the one farthest from the
    line between its ends (both axes scaled to [0, 1])."""
    frontier = [
        r
        for r in rows
        if not any(
            o["saved_median"] >= r["saved_median"]
            and o["best_stopped"] <= r["best_stopped"]
            and (o["saved_median"], o["best_stopped"]) != (r["saved_median"], r["best_stopped"])
            for o in rows
        )
    ]
    if len(frontier) < 3:
        return max(frontier, key=lambda r: r["saved_median"] - r["best_stopped"], default=None)
    frontier.sort(key=lambda r: r["saved_median"])
    xs = np.array([r["saved_median"] for r in frontier])
    ys = np.array([r["best_stopped"] for r in frontier])
    xs = (xs - xs.min()) / max(1e-12, np.ptp(xs))
    ys = (ys - ys.min()) / max(1e-12, np.ptp(ys))
    x0, y0, x1, y1 = xs[0], ys[0], xs[-1], ys[-1]
    dist = np.abs((y1 - y0) * xs - (x1 - x0) * ys + x1 * y0 - y1 * x0) / np.hypot(y1 - y0, x1 - x0)
    return frontier[int(np.argmax(dist))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--curves", type=Path, default=CURVES)
    p.add_argument("--orders", type=int, default=200, help="random arrival orders (200)")
    p.add_argument("--workers", default="1,4", help="workers training at once (1,4)")
    p.add_argument("--epochs", type=int, default=None, help="cut the curves (default: all)")
    p.add_argument("--etas", default="2,3")
    p.add_argument("--min-epochs", default="1,2,3")
    p.add_argument("--min-members", default="1,3,5,8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON of every setting")
    args = p.parse_args(argv)
    started = time.perf_counter()
    candidates = load(args.curves, args.epochs)
    epochs = len(candidates[0].curve)
    print(f"{len(candidates)} recorded curves of {epochs} epochs; {args.orders} orders each")
    rows = []
    grid = itertools.product(
        [float(e) for e in args.etas.split(",")],
        [int(m) for m in args.min_epochs.split(",")],
        [int(m) for m in args.min_members.split(",")],
        [int(w) for w in args.workers.split(",")],
    )
    for eta, first, members, workers in grid:
        stopper = SuccessiveHalving(
            eta=eta, min_epochs=first, cost_names=("params",), min_members=members
        )
        if not stopper.rungs(epochs):
            continue
        r = evaluate(candidates, stopper, workers, args.orders, args.seed)
        rows.append(
            {"eta": eta, "min_epochs": first, "min_members": members, "workers": workers, **r}
        )
    print("eta first members  W | saved (median, min-max) | best stopped | front recall")
    for r in rows:
        saved = f"{100 * r['saved_median']:.1f}% ({100 * r['saved_min']:.1f}-"
        saved += f"{100 * r['saved_max']:.1f}%)"
        recall = f"{r['front_recall_median']:.2f} (min {r['front_recall_min']:.2f})"
        print(
            f"{r['eta']:>3g} {r['min_epochs']:>5} {r['min_members']:>7} {r['workers']:>2} | "
            f"{saved:>23} | {100 * r['best_stopped']:>11.1f}% | {recall}"
        )
    for workers in sorted({r["workers"] for r in rows}):
        mine = [r for r in rows if r["workers"] == workers]
        ok = [r for r in mine if r["saved_median"] >= 0.40 and r["best_stopped"] <= 0.01]
        pick = max(ok, key=lambda r: r["saved_median"]) if ok else knee(mine)
        why = (
            "meets the target (>= 40% saved, best stopped in <= 1% of orders)"
            if ok
            else "the knee: no setting meets the target"
        )
        if pick:
            print(
                f"{workers} worker(s): eta {pick['eta']:g}, first rung {pick['min_epochs']}, "
                f"min members {pick['min_members']}: {100 * pick['saved_median']:.1f}% saved, "
                f"best stopped in {100 * pick['best_stopped']:.1f}% of orders ({why})"
            )
    print(f"{len(rows)} settings in {time.perf_counter() - started:.0f} s")
    if args.out:
        from nas.files import write_json_atomic

        write_json_atomic(
            args.out,
            {"settings": vars(args) | {"curves": str(args.curves), "out": None}, "rows": rows},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
