#!/usr/bin/env bash
# The paper-scale tables on one GPU machine, within a time budget: Table 1 under the 2016 protocol
# (configs/reproduce_2016.yaml), LeakGAN at T = 20 (reproduce_leakgan.yaml) and the relaxed GANs
# with RelGAN at T = 20 (reproduce_relaxed.yaml), three seeds each, every run of the three files
# side by side on the one GPU (docs/usage.md, "The paper-scale tables on one GPU machine").
#
#   bash clusters/gpu_tables.sh [SECONDS]     # default 540: a 10-minute call, a minute to spare
#
# The three reproduce commands run at once, each on a third of the CPU cores (taskset), each
# training up to $JOBS runs at a time in processes of their own (--jobs). Every run checkpoints at
# least once a minute (train.checkpoint_every_s=60). At the deadline each command is sent SIGTERM:
# its runs checkpoint and stop. Then the three reports are written from what is on disk. Run the
# same command again to continue where it stopped: finished runs are skipped, stopped ones resume.
#
# Leaves: runs/reproduce_2016, runs/reproduce_leakgan, runs/reproduce_relaxed (each run's
# checkpoints, metrics.jsonl, a log a run: seed<k>/<run>.log), docs/results/synthetic_2016.md,
# leakgan.md and relaxed.md, and gpu_tables.log (the commands' output; LOG to put it elsewhere).
# Environment: SEEDS (default 0,1,2), JOBS (runs at once per file, default 5), FILES (default the
# three above, space-separated), ORACLE_DIR (the paper's oracle folder, where the files' own
# ../shared/data/oracle is not there), PYTHON (default python, else python3), STACK=1 (each SeqGAN
# run's seeds as one stacked model, one job: --stack-seeds), DRY_RUN=1 (print the commands only).
set -euo pipefail

BUDGET=${1:-540}
SEEDS=${SEEDS:-0,1,2}
JOBS=${JOBS:-5}
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
LOG=$(realpath -m "${LOG:-gpu_tables.log}")
[ -z "${ORACLE_DIR:-}" ] || ORACLE_DIR=$(realpath -m "$ORACLE_DIR")   # the caller's path, before the cd
files=()
for f in ${FILES:-}; do files+=("$(realpath -m "$f")"); done   # the caller's paths, before the cd
cd "$(dirname "$0")/.."
[ ${#files[@]} -gt 0 ] || files=(configs/reproduce_2016.yaml configs/reproduce_leakgan.yaml configs/reproduce_relaxed.yaml)

case $BUDGET in ''|*[!0-9]*) echo "gpu_tables.sh: SECONDS must be a whole number of seconds, not '$BUDGET'" >&2; exit 2;; esac
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "gpu_tables.sh: no reproduce file $f (FILES)" >&2; exit 2; }
done
cpus=$(nproc)
share=$(( cpus / ${#files[@]} ))
overrides=("reproduce.seeds=[${SEEDS}]" "train.checkpoint_every_s=60")
if [ -n "${ORACLE_DIR:-}" ]; then overrides+=("data.oracle_dir=$ORACLE_DIR"); fi
stack=()
if [ -n "${STACK:-}" ]; then stack=(--stack-seeds); fi

exec 3>&1
run() {
  if [ -n "${DRY_RUN:-}" ]; then echo "$*" >&3; else "$@"; fi
}

cores() {  # the cores of file $1: a share each, the last one the rest; all of them if too few
  if [ "$share" -lt 1 ]; then echo "0-$(( cpus - 1 ))"; return; fi
  local first=$(( $1 * share )) last=$(( $1 == ${#files[@]} - 1 ? cpus - 1 : ($1 + 1) * share - 1 ))
  echo "$first-$last"
}

echo "$(date -u +%FT%TZ) gpu_tables: ${#files[@]} files, seeds $SEEDS, $JOBS runs at once each, ${BUDGET}s" | tee -a "$LOG"
pids=()
for i in "${!files[@]}"; do
  # the report of each is written once, below, after all three stop
  run timeout --signal=TERM --kill-after=120 "$BUDGET" taskset -c "$(cores "$i")" \
      "$PYTHON" run.py reproduce --config "${files[$i]}" --no-ray --jobs "$JOBS" ${stack[@]+"${stack[@]}"} --no-report "${overrides[@]}" \
      >> "$LOG" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
for f in "${files[@]}"; do
  run "$PYTHON" run.py reproduce --config "$f" --report-only "${overrides[@]}" >> "$LOG" 2>&1 || status=$?
done
case $status in
  0) echo "$(date -u +%FT%TZ) gpu_tables: every run finished" | tee -a "$LOG" ;;
  124|130) echo "$(date -u +%FT%TZ) gpu_tables: the deadline stopped it; run the same command again to continue" \
             | tee -a "$LOG"; status=0 ;;
  *) echo "$(date -u +%FT%TZ) gpu_tables: a command failed (exit $status): see $LOG and the runs' logs" \
       | tee -a "$LOG" ;;
esac
exit "$status"
