#!/usr/bin/env bash
# Prove the CUDA paths on a GPU machine where torch, torchvision, pytest, pytest-benchmark and nvidia-ml-py are
# preinstalled: installs nothing, runs the CUDA suite offline from the source tree, writes JSON and a log into the
# output directory, and prints a short table last.
#
#   scripts/gpu-check.sh OUT_DIR [extra pytest args...]
#   PHASES="steps steps" scripts/gpu-check.sh OUT_DIR      # the step benchmarks twice, back to back
#
# Phases, each its own pytest run and JSON file (N-NAME.json, in the order given), so a time limit hit in a later
# one still leaves the earlier numbers. CUDA cases only: the CPU cases are what every laptop and CI run proves.
#   steps     training-step throughput of the default CUDA cases (the headline numbers)
#   compile   torch.compile time, cold and warm cache, each in a fresh process
#   ddp       data-parallel training under torchrun with NCCL, world sizes 1..visible GPUs
#   pipeline  whole epochs through the DataLoader, and the DataLoader grid
#   overhead  scripts/overhead.py on CUDA: the harness against a bare loop of the same case (target <= 2%)
# PHASES defaults to "steps compile ddp pipeline". A phase named twice runs twice; the second run of "steps" is
# compared with the first (median img/s change per case, target <= 2%) by scripts/back_to_back.py: two runs in one
# session, adjacent or with other phases between them. When all four ran, the last line is the whole default CUDA
# matrix's time (target <= 6 minutes). With one short device session, run everything in one call (a machine is
# not kept between calls), the matrix first, under a budget:
#   BUDGET_S=520 PHASES="steps compile ddp pipeline steps overhead" scripts/gpu-check.sh "$OUT"
# BUDGET_S (seconds for the whole script): a phase gets what is left less 25 s, then an interrupt (pytest still
# writes that phase's JSON) and a kill 10 s later; no phase starts with under 45 s left; the script exits 1. The
# remaining 15 s print the tables. Set it below the caller's own time limit, so the tables are printed rather
# than the whole script killed.
# TRAINPERF_REQUIRE_CUDA=1 makes "no GPU" (or no CUDA case selected) an error: this cannot pass by skipping.
# GPU_CHECK_DEVICE=cpu rehearses the whole script on the CPU cases instead (the project's tests do, so a fault in
# the script does not cost device time); OVERHEAD_ARGS replaces the overhead phase's "--batch-size 128 --steps 50".
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT_DIR [pytest args...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: the script works from the repository root
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
device=${GPU_CHECK_DEVICE:-cuda}
[[ $device == cuda || $device == cpu ]] || {
  echo "gpu-check: GPU_CHECK_DEVICE must be cuda or cpu, got '$device'"
  exit 2
}
if [[ $device == cuda ]]; then
  export TRAINPERF_REQUIRE_CUDA=1
else
  export TRAINPERF_REQUIRE_CUDA=0 # a rehearsal also where the caller's environment asks for CUDA
fi
read -ra overhead_args <<<"${OVERHEAD_ARGS:---batch-size 128 --steps 50}"
python=${PYTHON:-python3}
log="$out/gpu-check.log"

{
  echo "== $(date -u +%FT%TZ) gpu-check on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv 2>&1 || true
  "$python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} 2>&1 | tee "$log"

marks_of() {
  case $1 in
    steps) echo "$device and train_step" ;;
    compile) echo "$device and compile_time" ;;
    ddp) echo "distributed and $device" ;;
    pipeline) echo "$device and (epoch or dataloader)" ;;
    overhead) echo "scripts/overhead.py --device $device" ;;
    *) return 1 ;;
  esac
}

phases=${PHASES:-steps compile ddp pipeline}
for name in $phases; do
  marks_of "$name" >/dev/null || {
    echo "gpu-check: unknown phase '$name' in PHASES; expected steps, compile, ddp, pipeline or overhead" | tee -a "$log"
    exit 2
  }
done

status=0
n=0
jsons=()
declare -A phase_s=() # seconds of each phase's first run: the whole default CUDA matrix when all four ran
# A reused OUT_DIR must not lend this run an earlier run's numbers, whatever its phases were.
rm -f "$out"/[0-9]*-*.json "$out"/[0-9]*-overhead.txt
: >"$out/table.txt"
budget=${BUDGET_S:-0}
[[ $budget =~ ^[0-9]+$ ]] || {
  echo "gpu-check: BUDGET_S must be a whole number of seconds, got '$budget'" | tee -a "$log"
  exit 2
}
budget=$((10#$budget)) # 08 is eight seconds, not a bad octal number
# A phase runs under `timeout` with what is left of the budget, less 15 s for the tables and 10 s for the kill
# that follows an interrupt pytest does not act on. The interrupt lets pytest end its session and write the JSON.
# --foreground: the phase stays in this script's process group, so a Ctrl-C or a kill of the group reaches it
# (pytest's torchrun launches end with it through their parent-death signal).
phase_limit() {
  local left=$((budget - 25 - SECONDS))
  echo $((left > 1 ? left : 1))
}
limit() {
  if ((budget == 0)); then
    "$@"
  else
    timeout --foreground --signal=INT --kill-after=10 "$(phase_limit)" "$@"
  fi
}
overhead=()
steps=() # JSON of the steps runs that finished (a run the budget interrupted is partial: never compared)
failed_first=() # phases whose first run failed: the matrix time then covers a failed run
for name in $phases; do
  n=$((n + 1))
  what=$(marks_of "$name")
  if ((budget > 0 && budget - SECONDS < 45)); then
    echo "phase $n-$name ($what) not started: $((budget - SECONDS)) s of BUDGET_S=$budget left" | tee -a "$log"
    status=1
    continue
  fi
  json="$out/$n-$name.json"
  start=$SECONDS
  allowed=$(phase_limit)
  if [[ $name == overhead ]]; then
    limit "$python" scripts/overhead.py --device "$device" "${overhead_args[@]}" 2>&1 | tee -a "$log" "$out/$n-overhead.txt"
  else
    limit "$python" -m pytest perf/ -p no:cacheprovider -rsfE --durations=15 -m "$what" --benchmark-json="$json" "$@" \
      2>&1 | tee -a "$log"
  fi
  rc=${PIPESTATUS[0]}
  note=""
  if ((budget > 0 && (rc == 124 || rc == 137) && SECONDS - start >= allowed)); then
    note=" (stopped by BUDGET_S=$budget)"
    rc=1 # not 124/137: a caller would read those as its own time limit killing the whole script
  fi
  echo "phase $n-$name ($what) exited $rc after $((SECONDS - start)) s$note" | tee -a "$log"
  if [[ -z ${phase_s[$name]+set} && -z $note ]]; then
    phase_s[$name]=$((SECONDS - start))
    ((rc == 0)) || failed_first+=("$name")
  fi
  ((rc == 0)) || status=$rc
  [[ -s $json ]] && jsons+=("$json")
  [[ $name == steps && -z $note && -s $json ]] && steps+=("$json")
  [[ -s $out/$n-overhead.txt ]] && overhead+=("$out/$n-overhead.txt")
done

for json in ${jsons[@]+"${jsons[@]}"}; do
  echo "== $(basename "$json")" | tee -a "$out/table.txt"
  "$python" -m trainperf.cli report --format summary "$json" 2>&1 | tee -a "$out/table.txt"
done
if [[ $phases =~ steps.*steps ]] && ((${#steps[@]} < 2)); then
  echo "== back to back: not compared, fewer than two steps runs finished" | tee -a "$out/table.txt"
fi
if ((${#steps[@]} >= 2)); then
  echo "== back to back: ${steps[0]##*/} then ${steps[1]##*/}" | tee -a "$out/table.txt"
  "$python" scripts/back_to_back.py "${steps[0]}" "${steps[1]}" | tee -a "$out/table.txt"
  ((PIPESTATUS[0] == 0)) || status=1
fi
for file in ${overhead[@]+"${overhead[@]}"}; do
  echo "== $(basename "$file")" | tee -a "$out/table.txt"
  tail -n 4 "$file" | tee -a "$out/table.txt"
done
complete=1
for name in steps compile ddp pipeline; do
  [[ -n ${phase_s[$name]+set} ]] || complete=0
done
if ((complete)); then
  total=$((phase_s[steps] + phase_s[compile] + phase_s[ddp] + phase_s[pipeline]))
  verdict="target <= 360 s"
  [[ $device == cuda ]] || verdict="a rehearsal: the CPU target, 180 s, is for the whole of pytest perf/"
  ((${#failed_first[@]} == 0)) || verdict="$verdict; but ${failed_first[*]} failed, see above"
  echo "== default ${device^^} matrix (steps, compile, ddp, pipeline; first runs): $total s ($verdict)" \
    | tee -a "$out/table.txt"
fi
exit "$status"
