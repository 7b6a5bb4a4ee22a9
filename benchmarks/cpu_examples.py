"""How long the CPU examples of README.md and ``--help`` take here, run as printed.

The commands are taken from where users read them: the ``examples:`` of every command's
``--help`` whose comment says "a CPU", then README's examples meant for a CPU (listed below,
each checked to appear in README.md verbatim). They run in that order, one after the other,
in a fresh folder holding copies of ``search_spaces/`` and ``studies/`` (later commands use
the studies earlier ones made, as a reader following along would), through ``bash``, with
the image folder at ``/tmp/cifar10`` (``--data-dir`` links it there when it lives elsewhere).
Prints each command's exit status and wall seconds, and keeps its output under ``--logs``.

    python benchmarks/cpu_examples.py --json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: README's and the documentation's examples meant for a CPU that no ``--help`` shows, in
#: the order a reader meets them (README's "what to look at next" first).
README_EXAMPLES: list[str] = [
    "nas report --storage sqlite:///studies/smoke.db --study smoke --out smoke-report.html",
    "nas export --storage sqlite:///studies/smoke.db --study smoke --best --out best.json",
    "nas train-winners --storage sqlite:///studies/smoke.db --study smoke --top-k 3 --epochs 1 "
    "--device cpu",
    "nas export --storage sqlite:///studies/smoke.db --study smoke --best --weights "
    "--out studies/smoke-winners/best.json",
    "nas search --space search_spaces/attention_resnet.toml --param-limit 5M --flops-limit 500M "
    "--dataset fake --trials 2 --proxy-epochs 1 --proxy-subset 256 --proxy-val 128 "
    "--device cpu --storage sqlite:///flops.db --study f",
    "nas search studies/smoke.toml --objectives accuracy,latency "
    "--study smoke-lat --storage sqlite:///studies/smoke-lat.db --trials 4",
    "nas search --storage sqlite:///studies/smoke-lat.db --study smoke-lat --latency-batch 4 "
    "--remeasure",
    "nas count --preset resnet20 --latency",
    "nas sample --space search_spaces/small_cifar.toml -n 20 --latency-limit 2ms",
    "nas export --storage sqlite:///s.db --study demo --best --out best.json",
    "nas report --storage sqlite:///s.db --study demo --out report.html",
]


def help_examples() -> list[str]:
    """The ``--help`` examples whose comment says "a CPU", continuation lines joined."""
    found: list[str] = []
    for command in ("search", "train-winners", "fidelity"):
        text = subprocess.run(
            ["nas", command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        block = text.split("examples:", 1)[1]
        joined = re.sub(r"\\\n\s*", "", block)
        joined = re.sub(r"\n\s+#", " #", joined)  # a comment on a line of its own
        for line in joined.splitlines():
            code, _, comment = line.partition("#")
            if "a CPU" in comment:
                found.append(" ".join(code.split()))
    return found


def readme_text() -> str:
    """README.md and the documentation pages (docs/**/*.md) with shell continuation lines
    joined and spaces collapsed."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    text = re.sub(r"\\\n\s*", "", "\n".join(p.read_text() for p in pages))
    return re.sub(r"[ \t]+", " ", text)


def main() -> None:
    """Run every example once and print its time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/tmp/cifar10", help="the CIFAR-10 image folder")
    parser.add_argument("--logs", type=Path, default=Path("cpu-examples-logs"))
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    readme = readme_text()
    missing = [c for c in README_EXAMPLES if c not in readme]
    if missing:
        sys.exit(f"not in README.md or docs/ as written here: {missing[0]}")
    data = Path(args.data_dir).resolve()
    if not data.is_dir():
        sys.exit(f"no image folder at {args.data_dir}: extract ../shared/data/cifar10-jpeg.tar.gz")
    if not Path("/tmp/cifar10").exists():
        Path("/tmp/cifar10").symlink_to(data)
    examples = help_examples()
    order = [examples[0], *README_EXAMPLES[:9], *examples[1:], *README_EXAMPLES[9:]]
    args.logs.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in ("search_spaces", "studies"):
            shutil.copytree(ROOT / folder, Path(tmp) / folder)
        for n, command in enumerate(order):
            start = time.perf_counter()
            done = subprocess.run(
                ["bash", "-c", command], cwd=tmp, capture_output=True, text=True, check=False
            )
            seconds = time.perf_counter() - start
            (args.logs / f"{n:02d}.log").write_text(f"$ {command}\n{done.stdout}{done.stderr}")
            rows.append({"command": command, "rc": done.returncode, "seconds": round(seconds, 1)})
            if not args.json:
                print(f"{seconds:7.1f}s  rc {done.returncode}  {command}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    if any(r["rc"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
