"""The GPU check's last table: one row per step case, with what a first look at a GPU needs side by side.

    python scripts/gpu_table.py --steps 1-steps.json [2-steps.json] [--compile 6-compile.json] [--peak-target 100000]

Per case: img/s and its spread (first steps run), MFU, GPU utilisation, power and SM clock (the run's telemetry),
compile time cold/warm (the compile phase's probes, when it ran) and the back-to-back change (the second steps run
against the first). The peak case (the fastest configuration of the default matrix: the largest batch among the
CUDA-graph cases) is then compared with ``--peak-target``. Standard library and trainperf's result records only:
it runs on the GPU check machine with ``PYTHONPATH=src``. Exit 2 on bad input; otherwise 0 (the phases' own
statuses, not this table, decide the check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainperf import results

COLUMNS = ("case", "img/s", "spread", "MFU", "util", "W", "MHz", "compile c/w s", "b2b")


def load(path: Path) -> dict[str, results.Result]:
    """Each trainperf result of a pytest-benchmark JSON file, by case id."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        benchmarks = doc["benchmarks"]
        found = {}
        for bench in benchmarks:
            if results.is_result(bench.get("extra_info")):
                record = results.from_extra_info(bench["extra_info"])
                found[record.identity.case_id] = record
        return found
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a trainperf pytest-benchmark JSON file ({exc})") from None


def _pct(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else f"{value:+.1%}" if signed else f"{value:.1%}"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def row(
    case_id: str, first: results.TrainStep, second: results.Result | None, compiled: results.Result | None
) -> list[str]:
    telemetry = first.health.telemetry if first.health else None
    mfu = first.utilisation.mfu if first.utilisation else None
    util = None if telemetry is None else telemetry.gpu_util_pct
    compile_s = "-"
    if isinstance(compiled, results.CompileTime) and compiled.compile_cold_s is not None:
        compile_s = f"{compiled.compile_cold_s:.1f}/{_num(compiled.compile_warm_s, 1)}"
    change = None
    if second is not None and second.rates is not None:
        change = second.rates.img_per_s / first.throughput.img_per_s - 1.0
    return [
        case_id,
        _num(first.throughput.img_per_s),
        _pct(first.throughput.img_per_s_spread),
        _pct(mfu),
        "-" if util is None else f"{util:.0f}%",
        _num(None if telemetry is None else telemetry.power_w),
        _num(None if telemetry is None else telemetry.sm_clock_mhz),
        compile_s,
        _pct(change, signed=True),
    ]


def peak_case(steps: dict[str, results.Result]) -> str | None:
    """The case id of the fastest configuration: among CUDA-graph cases, the one with the largest batch."""
    graphs = [
        (r.identity.config.get("batch_size", 0), case_id)
        for case_id, r in steps.items()
        if r.identity.config.get("compile") in ("reduce-overhead", "max-autotune")
    ]
    return max(graphs)[1] if graphs else None


def table(
    first: dict[str, results.Result], second: dict[str, results.Result], compiled: dict[str, results.Result]
) -> list[str]:
    rows = [
        row(case_id, record, second.get(case_id), compiled.get(case_id))
        for case_id, record in first.items()
        if isinstance(record, results.TrainStep) and not isinstance(record, results.DdpStep)
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    return [_line(cells, widths) for cells in [list(COLUMNS), *rows]]


def _line(cells: list[str], widths: list[int]) -> str:
    """The case left-aligned, numbers right-aligned."""
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=Path, nargs="+", required=True, help="the steps runs' JSON, first first")
    parser.add_argument("--compile", type=Path, help="the compile phase's JSON")
    parser.add_argument("--peak-target", type=float, default=100_000.0, help="img/s the peak case aims at")
    args = parser.parse_args(argv)
    try:
        first = load(args.steps[0])
        second = load(args.steps[1]) if len(args.steps) > 1 else {}
        compiled = load(args.compile) if args.compile else {}
    except ValueError as exc:
        print(f"gpu_table: {exc}", file=sys.stderr)
        return 2
    print("\n".join(table(first, second, compiled)))
    peak = peak_case(first)
    if peak is not None and (rates := first[peak].rates) is not None:
        share = rates.img_per_s / args.peak_target
        print(f"peak case {peak}: {rates.img_per_s:,.0f} img/s, {share:.0%} of the {args.peak_target:,.0f} target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
