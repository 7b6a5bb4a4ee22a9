"""How fast candidates are counted: the budget check (parameters) and fvcore FLOPs.

Samples N random points of a space (Optuna's RandomSampler), counts every candidate's
parameters (what the search's rejection needs), then the FLOPs of those that fit, first in
this process and then again with the unit cache warm. Prints JSON.

    python benchmarks/count_speed.py -n 1000 --param-limit 5M
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from nas.counting import clear_cache, count
from nas.sampling import sample
from nas.space import load_space
from nas.units import parse_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="search_spaces/attention_resnet.toml")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--param-limit", default="5M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes for FLOPs")
    args = parser.parse_args()
    limit = parse_count(args.param_limit)
    space = load_space(args.space)

    clear_cache()
    report = sample(space, args.n, seed=args.seed, limit=limit, flops=False)
    params_s = report.params_seconds
    feasible = [c.arch for c in report.candidates if c.feasible and c.arch is not None]

    # Rejection path again with a warm unit cache (what a long search sees).
    start = time.perf_counter()
    for c in report.candidates:
        if c.arch is not None:
            count(c.arch, flops=False)
    warm_params_s = time.perf_counter() - start

    parallel = sample(space, args.n, seed=args.seed, limit=limit, workers=args.workers)
    start = time.perf_counter()
    for arch in feasible:
        count(arch)
    serial_flops_s = time.perf_counter() - start
    start = time.perf_counter()
    for arch in feasible:
        count(arch)
    warm_flops_s = time.perf_counter() - start

    print(
        json.dumps(
            {
                "space": space.name,
                "candidates": args.n,
                "feasible": len(feasible),
                "rejection_rate": report.rejection_rate,
                "params_seconds_cold": round(params_s, 2),
                "params_ms_per_candidate_cold": round(1000 * params_s / args.n, 2),
                "params_seconds_warm": round(warm_params_s, 3),
                "flops_seconds_parallel": round(parallel.flops_seconds, 1),
                "flops_seconds_one_process": round(serial_flops_s, 1),
                "flops_seconds_warm": round(warm_flops_s, 3),
                "cpu": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
