#!/usr/bin/env bash
# Prove the CUDA paths on a GPU machine where torch, torchvision, pytest, pytest-benchmark and nvidia-ml-py are
# preinstalled: installs nothing, runs the CUDA suite offline from the source tree, writes the JSON and a log
# into the output directory, and prints a short table last.
#
#   scripts/gpu-check.sh OUT_DIR [extra pytest args...]
#
# TRAINPERF_REQUIRE_CUDA=1 makes "no GPU" an error, so this cannot pass by skipping every CUDA case.
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT_DIR [pytest args...]}
shift
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export TRAINPERF_REQUIRE_CUDA=1
python=${PYTHON:-python3}

{
  echo "== $(date -u +%FT%TZ) gpu-check on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv 2>&1 || true
  "$python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} 2>&1 | tee "$out/gpu-check.log"

start=$(date +%s)
# CUDA cases of the default matrix, plus the CPU rows of the article's table for comparison.
"$python" -m pytest perf/ -p no:cacheprovider -rsfE \
  --benchmark-json="$out/perf.json" "$@" 2>&1 | tee -a "$out/gpu-check.log"
status=${PIPESTATUS[0]}
echo "pytest perf/ exited $status after $(( $(date +%s) - start )) s" | tee -a "$out/gpu-check.log"

if [[ -s "$out/perf.json" ]]; then
  "$python" -m trainperf.table "$out/perf.json" | tee "$out/table.txt"
fi
exit "$status"
