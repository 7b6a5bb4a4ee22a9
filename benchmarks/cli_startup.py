"""How long ``nas --help`` takes, against ``python -c "import torch"`` on the same machine.

Every arm is a fresh process (what a user waits for), the arms run interleaved in rounds,
and each prints min/median/max wall seconds; the ratio is of medians.

    python benchmarks/cli_startup.py --rounds 5 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name -> command line; ``nas`` is the installed console script.
ARMS: dict[str, list[str]] = {
    "import torch": [sys.executable, "-c", "import torch"],
    "nas --help": ["nas", "--help"],
    "nas --version": ["nas", "--version"],
    "nas search --help": ["nas", "search", "--help"],
    "nas train-winners --help": ["nas", "train-winners", "--help"],
    "nas search --param-limit 5X": ["nas", "search", "--param-limit", "5X"],
    # usage and settings errors: each must cost at most 0.1x of import torch
    "nas serch": ["nas", "serch"],
    "nas search --param-limt 5M": ["nas", "search", "--param-limt", "5M"],
    "nas search --sampler tpee": ["nas", "search", "--sampler", "tpee"],
    "nas search --trials 0": ["nas", "search", "--trials", "0"],
    "nas search --eta 1": ["nas", "search", "--eta", "1"],
    "nas search --objectives acc": ["nas", "search", "--objectives", "acc"],
    "nas search BAD_KEY.toml": ["nas", "search", "BAD_KEY.toml"],
    "nas search BAD_VALUE.toml": ["nas", "search", "BAD_VALUE.toml"],
    "nas export (no --out)": ["nas", "export", "--study", "s", "--best"],
}

#: Study files the error arms read, written to a temporary folder the arms run in.
STUDY_FILES = {
    "BAD_KEY.toml": '[search]\nparam_limt = "5M"\n',
    "BAD_VALUE.toml": '[search]\nsampler = "tpee"\n',
}


def run_once(cmd: list[str], cwd: str | None = None) -> float:
    """Wall seconds of one run of ``cmd``."""
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    """Run the arms interleaved and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per arm (5)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if shutil.which("nas") is None:
        sys.exit("the nas command is not installed: pip install -e .")
    tmp = tempfile.mkdtemp(prefix="nas-startup-")
    for name, text in STUDY_FILES.items():
        Path(tmp, name).write_text(text)
    for cmd in ARMS.values():  # warm the file cache once, untimed
        run_once(cmd, tmp)
    times: dict[str, list[float]] = {name: [] for name in ARMS}
    for _ in range(args.rounds):
        for name, cmd in ARMS.items():
            times[name].append(run_once(cmd, tmp))
    shutil.rmtree(tmp, ignore_errors=True)
    result = {
        name: {"min": min(t), "median": statistics.median(t), "max": max(t), "n": len(t)}
        for name, t in times.items()
    }
    torch_median = result["import torch"]["median"]
    ratios = {name: r["median"] / torch_median for name, r in result.items()}
    if args.json:
        print(json.dumps({"seconds": result, "ratio_to_import_torch": ratios}, indent=2))
        return
    print(f"{'command':32} {'min':>7} {'median':>7} {'max':>7}  x import torch")
    for name, r in result.items():
        print(f"{name:32} {r['min']:7.3f} {r['median']:7.3f} {r['max']:7.3f}  {ratios[name]:.3f}")
    errors = [n for n in ARMS if n not in ("import torch",) and not n.endswith("--help")]
    worst = max(errors, key=lambda n: ratios[n])
    print(f"slowest error or quick command: {worst}, {ratios[worst]:.3f}x import torch")


if __name__ == "__main__":
    main()
