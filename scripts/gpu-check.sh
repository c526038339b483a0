#!/usr/bin/env bash
# Prove the CUDA paths on a GPU machine where torch, torchvision, pytest, pytest-benchmark and nvidia-ml-py are
# preinstalled: installs nothing, runs the suite offline from the source tree, writes JSON and a log into the
# output directory, and prints a short table last.
#
#   scripts/gpu-check.sh OUT_DIR [extra pytest args...]
#
# Three phases, each with its own JSON, so a time limit hit in a later one still leaves the earlier numbers:
#   1. training steps and compile time (the headline numbers),
#   2. data-parallel training under torchrun with NCCL, world sizes 1..visible GPUs,
#   3. whole epochs and the DataLoader grid.
# TRAINPERF_REQUIRE_CUDA=1 makes "no GPU" (or no CUDA case selected) an error: this cannot pass by skipping.
# PHASES=1 runs the first phase only, PHASES=2 the first two.
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT_DIR [pytest args...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: the script works from the repository root
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TRAINPERF_REQUIRE_CUDA=1
python=${PYTHON:-python3}
log="$out/gpu-check.log"

{
  echo "== $(date -u +%FT%TZ) gpu-check on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv 2>&1 || true
  "$python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} 2>&1 | tee "$log"

status=0
phase() {
  local name=$1 marks=$2
  shift 2
  local start=$SECONDS
  "$python" -m pytest perf/ -p no:cacheprovider -rsfE -m "$marks" --benchmark-json="$out/$name.json" "$@" 2>&1 \
    | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "phase $name ($marks) exited $rc after $((SECONDS - start)) s" | tee -a "$log"
  ((rc == 0)) || status=$rc
}

phases=${PHASES:-3}
phase steps "train_step or compile_time" "$@"
((phases >= 2)) && phase ddp "distributed and cuda" "$@"
((phases >= 3)) && phase pipeline "epoch or dataloader" "$@"

for json in "$out/steps.json" "$out/ddp.json" "$out/pipeline.json"; do
  [[ -s $json ]] && "$python" -m trainperf.table "$json" | tee -a "$out/table.txt"
done
exit "$status"
