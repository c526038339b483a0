#!/usr/bin/env bash
# The verdict acceptance check on a CPU machine (issue 13): record a baseline without forcing, clean reruns,
# a real slowdown of the machine, and interleaved A/B with and without an injected slowdown. Prints a table last
# (also OUT/table.md). About 40 minutes on a 2-core VM.
#
#   scripts/verdict_check.sh OUT_DIR
#
# Environment: CLEAN (5), SLOW (2), AB (3) repetitions; PAIRS (5) A/B pairs; AB_ARGS, the A/B side's pytest
# options; RECORD_ARGS, extra options of the recording (e.g. --trainperf-record-max-runs=3). The baseline is recorded into OUT_DIR/baselines, never into the committed baselines/.
set -uo pipefail

out=${1:?usage: scripts/verdict_check.sh OUT_DIR}
mkdir -p "$out/baselines"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
clean=${CLEAN:-5} slow=${SLOW:-2} ab=${AB:-3} pairs=${PAIRS:-5}
read -r -a ab_args <<<"${AB_ARGS:---trainperf-rounds=5 --trainperf-window-s=0.5}"
read -r -a record_args <<<"${RECORD_ARGS:-}"
common=(perf/ -m cpu -p no:cacheprovider "--trainperf-baseline-dir=$out/baselines")
log="$out/verdict-check.log"
: >"$log"

step() {  # name, command...: run it, keep its exit status and time
  local name=$1 start rc
  shift
  start=$(date +%s)
  echo "== $name: $*" | tee -a "$log"
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  echo "$rc $(($(date +%s) - start))" >"$out/$name.rc"
  echo "   exit $rc, $(($(date +%s) - start)) s" | tee -a "$log"
}

step record python -m pytest "${common[@]}" --trainperf-update-baselines \
  --trainperf-verdict-json="$out/record.json" "${record_args[@]}"
for i in $(seq 1 "$clean"); do
  step "clean-$i" python -m pytest "${common[@]}" --trainperf-verdict-json="$out/clean-$i.json" \
    --benchmark-json="$out/clean-$i.bench.json"
done
for i in $(seq 1 "$slow"); do
  step "taskset-$i" taskset -c 0 python -m pytest "${common[@]}" --trainperf-verdict-json="$out/taskset-$i.json" \
    --benchmark-json="$out/taskset-$i.bench.json"
done
for i in $(seq 1 "$ab"); do
  step "ab-same-$i" python -m trainperf.cli ab --pairs "$pairs" --json "$out/ab-same-$i.json" \
    -- perf/ -m "cpu and train_step" "${ab_args[@]}"
done
for i in $(seq 1 "$ab"); do
  step "ab-slow-$i" env PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" python -m trainperf.cli ab \
    --pairs "$pairs" --b-args "-p slowdown_plugin" --json "$out/ab-slow-$i.json" \
    -- perf/ -m "cpu and train_step" "${ab_args[@]}"
done

python - "$out" <<'EOF' | tee "$out/table.md"
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
print(
    "| check | exit | time | REGRESSED | no verdict (busy or slower machine) | most CPU taken by other work | "
    "train step change (threshold, detectable) | epoch change | other failed |"
)
print("|---|---|---|---|---|---|---|---|---|")
for rc_file in sorted(out.glob("*.rc"), key=lambda p: (p.stat().st_mtime)):
    name = rc_file.stem
    rc, seconds = rc_file.read_text().split()
    verdicts = out / f"{name}.json"
    rows = json.loads(verdicts.read_text())["comparisons"] if verdicts.exists() else []

    def cell(kind):
        for r in rows:
            if r["name"].startswith(kind) and r["change"] is not None:
                extra = f", confirm {r['confirmation']:+.1%}" if r.get("confirmation") is not None else ""
                return (
                    f"{r['change']:+.1%}{extra} (-{r['threshold']:.1%}, -{r['detectable']:.1%}) {r['verdict']}"
                )
        return "-"

    failed = [r for r in rows if r["verdict"] == "REGRESSED"]
    busy = [r for r in rows if r.get("busy") is not None or r.get("machine_change") is not None]
    bench = out / f"{name}.bench.json"
    loads = []
    if bench.exists():  # the first measurement of each benchmark (confirmations are not saved there)
        for b in json.loads(bench.read_text())["benchmarks"]:
            load = (b.get("extra_info") or {}).get("machine_load")
            if load:
                loads.append(load["others"] + load["steal"])
    most = f"{max(loads):.0%}" if loads else "-"
    others = [
        f"{r['name'].split('[')[1].rstrip(']')} {r['change']:+.1%}"
        for r in failed
        if not r["name"].startswith(("test_train_step", "test_epoch"))
    ]
    print(
        f"| {name} | {rc} | {seconds} s | {len(failed)} | {len(busy)} | {most} | {cell('test_train_step')} | "
        f"{cell('test_epoch')} | "
        f"{', '.join(others) or '-'} |"
    )
baseline = next((out / "baselines").glob("*.json"), None)
if baseline:
    print()
    print(f"smallest detectable drop per benchmark against {baseline.name} (80% of single runs):")
    doc = json.loads(baseline.read_text())
    from trainperf.gate import baseline as bl
    from trainperf.gate.baseline_commands import show_lines

    for line in show_lines(bl.load(baseline)):
        print("    " + line)
EOF
