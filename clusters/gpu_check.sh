#!/usr/bin/env bash
# The GPU checks of the paper-scale issue in one call of a lent GPU machine (about 10 minutes):
#
#   OUT=<folder> ORACLE_DIR=<the paper's oracle folder> bash clusters/gpu_check.sh [SECONDS]
#
# 1. the GPU tests (tests/unit/test_gpu.py: CUDA graphs bit-identical; test_batched.py: seeds
#    stacked, here on the CPU side of the machine), at most 3 minutes;
# 2. the benchmark's gpu and batched sections on the GPU (a D epoch eager and graphed, and K = 3
#    seeds stacked against three runs), at most 4 minutes, figures to $OUT/bench_gpu.json;
# 3. the paper-scale tables (clusters/gpu_tables.sh) for what is left of SECONDS (default 570),
#    their reports copied to $OUT.
# Everything it prints goes to $OUT/gpu_check.log too. Needs a CUDA GPU; says so and stops without one.
set -uo pipefail

BUDGET=${1:-570}
OUT=$(realpath -m "${OUT:-gpu_out}")
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
[ -z "${ORACLE_DIR:-}" ] || export ORACLE_DIR=$(realpath -m "$ORACLE_DIR")
cd "$(dirname "$0")/.."
case $BUDGET in ''|*[!0-9]*) echo "gpu_check.sh: SECONDS must be a whole number of seconds, not '$BUDGET'" >&2; exit 2;; esac
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
start=$SECONDS
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: torch sees no CUDA GPU here; these checks are for a GPU machine"; exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
git rev-parse --short HEAD 2>/dev/null || true

echo "== 1. GPU tests"
timeout 180 "$PYTHON" -m pytest -q tests/unit/test_gpu.py tests/unit/test_batched.py

echo "== 2. bench: gpu, batched"
timeout 240 "$PYTHON" -m seqgan_ray.experiments.bench --sections gpu,batched --threads 4 --json "$OUT/bench_gpu.json"

left=$(( BUDGET - (SECONDS - start) - 60 ))
echo "== 3. the tables, ${left}s"
if [ "$left" -gt 60 ]; then
  LOG="$OUT/gpu_tables.log" bash clusters/gpu_tables.sh "$left"
  cp docs/results/synthetic_2016.md docs/results/leakgan.md docs/results/relaxed.md "$OUT"/ 2>/dev/null || true
else
  echo "too little time left for the tables"
fi
echo "== done in $(( SECONDS - start ))s; $OUT holds the log, bench_gpu.json and the reports"
