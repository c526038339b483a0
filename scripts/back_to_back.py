"""Run-to-run stability: the median img/s of each benchmark in two runs of the same suite on the same machine.

    python scripts/back_to_back.py FIRST.json SECOND.json [--target 0.02]

Prints, for every throughput benchmark in both files, the two medians and the relative change, then the largest
change. Exits 1 when that is above the target (the issue's "median img/s spread across back-to-back runs <= 2%
on a GPU") or when a benchmark is in one run only (a case that failed or was skipped in the other would leave
the verdict to the survivors), 2 on bad input. Needs only the standard library and trainperf's result records
(no torch, scipy or pandas): it runs on the GPU check machine with ``PYTHONPATH=src``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainperf import results


def medians(path: Path) -> dict[str, float]:
    """``img_per_s`` of each benchmark in a pytest-benchmark JSON file that has one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read a JSON document ({exc})") from None
    benchmarks = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benchmarks, list):
        raise ValueError(f"{path}: not pytest-benchmark output (no 'benchmarks' list)")
    out: dict[str, float] = {}
    for bench in benchmarks:
        extra: Any = bench.get("extra_info") if isinstance(bench, dict) else None
        if not results.is_result(extra):
            continue
        try:
            rates = results.from_extra_info(extra).rates
        except results.ResultError as exc:
            raise ValueError(f"{path}: {bench.get('name')}: {exc}") from None
        if rates is not None and rates.img_per_s > 0:
            out[str(bench.get("name"))] = rates.img_per_s
    return out


def compare(first: dict[str, float], second: dict[str, float]) -> list[tuple[str, float, float, float]]:
    """(name, first, second, relative change) for the benchmarks both runs have, in the first run's order."""
    return [(name, a, second[name], second[name] / a - 1.0) for name, a in first.items() if name in second]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--target", type=float, default=0.02, help="largest allowed |change| (default 0.02)")
    args = parser.parse_args(argv)
    try:
        first, second = medians(args.first), medians(args.second)
    except ValueError as exc:
        print(f"back_to_back: {exc}", file=sys.stderr)
        return 2
    rows = compare(first, second)
    if not rows:
        print(f"back_to_back: {args.first} and {args.second} share no throughput benchmark", file=sys.stderr)
        return 2
    width = max(len(name) for name, *_ in rows)
    print(f"{'benchmark':<{width}}  {'first':>10}  {'second':>10}  {'change':>7}")
    for name, a, b, change in rows:
        print(f"{name:<{width}}  {a:>10,.1f}  {b:>10,.1f}  {change:>+7.2%}")
    worst = max(abs(change) for *_, change in rows)
    verdict = "within" if worst <= args.target else "ABOVE"
    print(f"largest change {worst:.2%}: {verdict} the {args.target:.0%} target ({len(rows)} benchmarks)")
    only = [
        (name, path)
        for names, other, path in ((first, second, args.first), (second, first, args.second))
        for name in names
        if name not in other
    ]
    for name, path in only:
        print(f"only in {path}: {name}")
    return 0 if worst <= args.target and not only else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
