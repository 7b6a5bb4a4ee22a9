"""How much a latency measurement adds to parameter and FLOP counts, and how repeatable it is.

Draws ``--n`` architectures of a space that fit ``--param-limit`` (Optuna's RandomSampler,
seeded), then measures each one in ``--repeats`` separate processes, one after the other,
exactly as a search measures it before training (:func:`nas.hardware.measure.measure`: eval
mode, the proxy's precision and memory format on the device, warm-up, then the median of 30
timed runs at the given batch, the thread count pinned). It prints and writes (JSON):

* the coefficient of variation of each architecture's median across the processes
  (min / median / max over the architectures): how much one measurement moves on this
  machine;
* Kendall's tau between every pair of repeats (the target is at least 0.9): whether a
  repeat ranks the candidates alike;
* Kendall's tau of latency against FLOPs and against parameters (mean over repeats): how
  much the measurement tells that the counts do not (1.0: nothing);
* what one measurement costs (median seconds, building the network included).

Each tau comes with the 90% interval of :func:`nas.proxy.ranking.tau_interval`.

    python benchmarks/latency.py                       # 30 architectures, 3 processes, CPU
    python benchmarks/latency.py --device cuda --out results/latency-cuda.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.files import write_json_atomic

DEFAULT_SPACE = "search_spaces/attention_resnet.toml"


def draw(space_path: str, n: int, seed: int, param_limit: float) -> list[dict[str, Any]]:
    """``n`` architectures of the space that fit ``param_limit``, with their counts."""
    import optuna

    from nas.counting import count
    from nas.errors import ConfigError
    from nas.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[dict[str, Any]] = []
    while len(out) < n:
        trial = study.ask()
        try:
            arch = space.suggest(trial, in_channels=3, input_size=32, num_classes=10)
        except ConfigError:
            continue
        c = count(arch, flops=False)
        if c.params > param_limit:
            continue
        flops = count(arch).flops
        out.append({"arch": arch.to_dict(), "params": c.params, "flops": flops})
    return out


def measure_all(archs: list[dict[str, Any]], device: str, batch: int | None) -> dict[str, Any]:
    """Measure every architecture in this process (one repeat)."""
    from nas.config import ArchConfig
    from nas.hardware.context import HardwareContext
    from nas.hardware.measure import measure
    from nas.training import resolve_device

    ctx = HardwareContext.current(resolve_device(device), batch)
    latency, memory, seconds = [], [], []
    for item in archs:
        m = measure(ArchConfig.from_dict(item["arch"]), ctx)
        latency.append(m.latency_ms)
        memory.append((m.memory_bytes or 0.0) / 1e6)
        seconds.append(m.seconds)
    return {"context": ctx.to_dict(), "latency": latency, "memory": memory, "seconds": seconds}


def tau_with_interval(x: list[float], y: list[float]) -> dict[str, Any]:
    """Kendall's tau of ``x`` and ``y`` with its 90% interval."""
    from scipy.stats import kendalltau

    from nas.proxy.ranking import tau_interval

    tau = float(kendalltau(x, y).statistic)
    interval = tau_interval(tau, len(x))
    return {"tau": tau, "interval": list(interval) if interval else None}


def summarise(archs: list[dict[str, Any]], repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures the module doc lists."""
    n = len(archs)
    per_arch = [[r["latency"][i] for r in repeats] for i in range(n)]
    cvs = [statistics.pstdev(v) / statistics.fmean(v) for v in per_arch]
    pairs = [
        {"repeats": [a, b], **tau_with_interval(repeats[a]["latency"], repeats[b]["latency"])}
        for a, b in itertools.combinations(range(len(repeats)), 2)
    ]
    mean_latency = [statistics.fmean(v) for v in per_arch]
    flops = [float(a["flops"]) for a in archs]
    params = [float(a["params"]) for a in archs]
    seconds = [s for r in repeats for s in r["seconds"]]
    return {
        "n": n,
        "repeats": len(repeats),
        "context": repeats[0]["context"],
        "latency_ms": _spread(mean_latency),
        "cv": _spread(cvs),
        "tau_between_repeats": pairs,
        "tau_latency_flops": tau_with_interval(mean_latency, flops),
        "tau_latency_params": tau_with_interval(mean_latency, params),
        "tau_flops_params": tau_with_interval(flops, params),
        "seconds_per_measurement": _spread(seconds),
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


def _interval(t: dict[str, Any]) -> str:
    low_high = t["interval"]
    return f"{t['tau']:+.2f}" + (f" [{low_high[0]:+.2f}, {low_high[1]:+.2f}]" if low_high else "")


def report(summary: dict[str, Any]) -> None:
    """Print the figures."""
    from nas.hardware.context import HardwareContext

    ctx = HardwareContext.from_dict(summary["context"])
    cv, lat, sec = summary["cv"], summary["latency_ms"], summary["seconds_per_measurement"]
    print(f"{summary['n']} architectures, {summary['repeats']} processes, on {ctx.describe()}")
    print(
        f"latency per batch (ms), min / median / max: {lat['min']:.2f} / {lat['median']:.2f} "
        f"/ {lat['max']:.2f}"
    )
    print(
        f"coefficient of variation of each median across processes, min / median / max: "
        f"{100 * cv['min']:.1f}% / {100 * cv['median']:.1f}% / {100 * cv['max']:.1f}%"
    )
    for pair in summary["tau_between_repeats"]:
        a, b = pair["repeats"]
        print(f"Kendall tau, repeat {a + 1} vs {b + 1}: {_interval(pair)} (90% interval)")
    print(f"Kendall tau, latency vs FLOPs:  {_interval(summary['tau_latency_flops'])}")
    print(f"Kendall tau, latency vs params: {_interval(summary['tau_latency_params'])}")
    print(f"Kendall tau, FLOPs vs params:   {_interval(summary['tau_flops_params'])}")
    print(
        f"seconds per measurement (network built, warm-up, 30 runs, memory), min / median / "
        f"max: {sec['min']:.2f} / {sec['median']:.2f} / {sec['max']:.2f}"
    )


def main() -> None:
    """Draw, measure in separate processes, summarise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=DEFAULT_SPACE, help=f"space file ({DEFAULT_SPACE})")
    parser.add_argument("--n", type=int, default=30, help="architectures (30)")
    parser.add_argument("--repeats", type=int, default=3, help="separate processes (3)")
    parser.add_argument("--param-limit", type=float, default=5e6, help="parameter limit (5e6)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    parser.add_argument("--batch", type=int, default=None, help="batch (1 on CPU, 32 on CUDA)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:  # one repeat: read the architectures, write the measurements
        archs = json.loads(args.worker.read_text())
        result = measure_all(archs, args.device, args.batch)
        args.worker.with_suffix(".out.json").write_text(json.dumps(result))
        return
    start = time.perf_counter()
    archs = draw(args.space, args.n, args.seed, args.param_limit)
    repeats = []
    with tempfile.TemporaryDirectory(prefix="nas-latency-") as tmp:
        path = Path(tmp) / "archs.json"
        path.write_text(json.dumps(archs))
        for r in range(args.repeats):
            cmd = [sys.executable, __file__, "--worker", str(path), "--device", args.device]
            if args.batch:
                cmd += ["--batch", str(args.batch)]
            subprocess.run(cmd, check=True)
            repeats.append(json.loads(path.with_suffix(".out.json").read_text()))
            print(
                f"repeat {r + 1}/{args.repeats} done ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
    summary = summarise(archs, repeats)
    summary["space"], summary["param_limit"] = args.space, args.param_limit
    summary["wall_seconds"] = time.perf_counter() - start
    summary["archs"] = [
        {**a, "latency": [r["latency"][i] for r in repeats]} for i, a in enumerate(archs)
    ]
    report(summary)
    print(f"took {summary['wall_seconds']:.0f} s")
    if args.out:
        write_json_atomic(args.out, summary)


if __name__ == "__main__":
    main()
