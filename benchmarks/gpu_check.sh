#!/usr/bin/env bash
# The GPU checks, in one go and under 10 minutes on a machine with a CUDA GPU: the CUDA tests,
# the proxy-throughput benchmark, the latency benchmark on CUDA, and a short search with the
# latency objective (exported). Every figure goes to one folder (default gpu-check/).
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --out DIR --data DIR
#   bash benchmarks/gpu_check.sh --dry-run       # print what it would do (CI runs this)
#
# --data: an image folder of CIFAR-10 (DIR/train/<class>/*.png); default: extracted from
# ../shared/data/cifar10-jpeg.tar.gz when that file exists, else the throughput benchmark is
# skipped (it needs real images). Each step has its own time limit and a failing step does
# not stop the next; the exit status is that of the first failing step.
set -u

OUT=gpu-check
DATA=""
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python}
STATUS=0
TARBALL=../shared/data/cifar10-jpeg.tar.gz

# step NAME SECONDS COMMAND...: run (or print) one step, its output to $OUT/NAME.log
step() {
  local name="$1" limit="$2"
  shift 2
  if [ "$DRY" = 1 ]; then
    echo "would run ($name, at most ${limit}s): $*"
    return 0
  fi
  echo "== $name: $*"
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc after $((SECONDS - start)) s (log: $OUT/$name.log)"
  tail -n 12 "$OUT/$name.log" | sed 's/^/   | /'
  if [ $rc -ne 0 ] && [ $STATUS -eq 0 ]; then STATUS=$rc; fi
}

if [ "$DRY" = 1 ]; then
  echo "would write every figure to $OUT/"
else
  mkdir -p "$OUT"
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: no CUDA GPU is available here; run it on a GPU machine (or --dry-run)" >&2
    exit 2
  fi
  nvidia-smi > "$OUT/device.txt" 2>&1 || true
  "$PY" -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)" >> "$OUT/device.txt"
fi

if [ -z "$DATA" ] && [ -f "$TARBALL" ]; then
  DATA="$OUT/cifar10"
  if [ "$DRY" = 1 ]; then
    echo "would extract $TARBALL to $DATA"
  else
    mkdir -p "$DATA" && tar -xzf "$TARBALL" -C "$DATA"
  fi
fi

step cuda-tests 180 "$PY" -m pytest tests/cuda -q -rs
if [ -n "$DATA" ]; then
  step proxy-throughput 120 "$PY" benchmarks/proxy_throughput.py --data-dir "$DATA" \
    --device cuda --rounds 2 --json
else
  echo "skipped proxy-throughput: no --data and no $TARBALL"
fi
step latency 120 "$PY" benchmarks/latency.py --device cuda --out "$OUT/latency-cuda.json"
step search-latency 120 nas search studies/smoke.toml --device cuda \
  --objectives accuracy,latency --trials 4 --storage "sqlite:///$OUT/gpu.db" \
  --study gpu-latency --quiet
step export 40 nas export --storage "sqlite:///$OUT/gpu.db" --study gpu-latency --best \
  --out "$OUT/best.json"

if [ "$DRY" = 0 ]; then
  echo "figures in $OUT/ (device.txt, *.log, latency-cuda.json, best.json); exit $STATUS"
fi
exit $STATUS
