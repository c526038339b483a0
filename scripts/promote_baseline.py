"""Promote a machine's baseline from several runs of the suite, after checking that the runs agree.

    python scripts/promote_baseline.py --runs run-*.json --baseline-dir baselines

Each run is a pytest-benchmark JSON file (``--benchmark-json``) recorded on the same machine key. For every
throughput benchmark, every pair of runs must compare as ``ok`` under the gate's own rule and every run's
round-to-round spread must be within ``--max-spread``. Then the run with the median img/s of each benchmark is
merged into ``<baseline-dir>/<machine key>.json``.

Exit status: 0 written; 1 the runs disagree or are too noisy (one line per problem, nothing written); 2 bad
input (one line naming the file, nothing written).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainperf import baseline as bl
from trainperf.machine_key import machine_key
from trainperf.verdict import DEFAULT_ALPHA, DEFAULT_TOLERANCE, OK, compare, decidable

WRITTEN, REFUSED, BAD_INPUT = 0, 1, 2


class InputError(Exception):
    """A run or the baseline directory cannot be used; the message names the file."""


@dataclass(frozen=True)
class Result:
    """One throughput benchmark of one run."""

    img_per_s: float
    samples: tuple[float, ...]
    spread: float
    extra: dict[str, Any]


@dataclass(frozen=True)
class Run:
    path: Path
    key: str
    info: dict[str, Any]
    commit: str | None
    date: str | None
    results: dict[str, Result]


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def _result(path: Path, key: str, name: Any, extra: dict[str, Any]) -> Result:
    if not isinstance(name, str):
        raise InputError(f"{path}: a benchmark has no name")
    # The baseline module's own validation: a trainperf benchmark id, a positive img/s, positive samples.
    doc = {
        "schema": bl.SCHEMA,
        "schema_version": bl.SCHEMA_VERSION,
        "machine_key": key,
        "benchmarks": {name: {"img_per_s": extra.get("img_per_s"), "samples": extra.get("img_per_s_rounds")}},
    }
    try:
        entry = bl.parse(doc, path).entries[name]
    except bl.BaselineError as exc:
        raise InputError(str(exc)) from None
    spread = extra.get("img_per_s_spread")
    if not isinstance(spread, (int, float)) or isinstance(spread, bool) or not math.isfinite(spread) or spread < 0:
        raise InputError(f"{path}: {name}: img_per_s_spread must be a non-negative number, got {spread!r}")
    return Result(entry.img_per_s, entry.samples, float(spread), extra)


def read_run(path: Path) -> Run:
    """One pytest-benchmark JSON file, reduced to its trainperf throughput benchmarks."""
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise InputError(f"{path}: not pytest-benchmark output (no 'benchmarks' list)")
    machine = doc.get("machine_info")
    info = machine.get("trainperf") if isinstance(machine, dict) else None
    if not isinstance(info, dict):
        raise InputError(f"{path}: no machine_info.trainperf; this run was not recorded by the trainperf suite")
    try:
        key = machine_key(info)
    except (AttributeError, TypeError):
        raise InputError(f"{path}: machine_info.trainperf is malformed; cannot compute its machine key") from None
    results: dict[str, Result] = {}
    for bench in doc["benchmarks"]:
        if not isinstance(bench, dict):
            raise InputError(f"{path}: a benchmark entry is not an object")
        extra = bench.get("extra_info")
        if not isinstance(extra, dict) or "img_per_s_rounds" not in extra:
            continue  # compile time and foreign benchmarks have no throughput to promote
        name = bench.get("name")
        if name in results:
            raise InputError(f"{path}: benchmark {name} appears twice")
        results[name] = _result(path, key, name, extra)
    if not results:
        raise InputError(f"{path}: no trainperf throughput benchmark (none has extra_info.img_per_s_rounds)")
    commit_info = doc.get("commit_info")
    commit = commit_info.get("id") if isinstance(commit_info, dict) else None
    date = doc.get("datetime")
    return Run(
        path=path,
        key=key,
        info=info,
        commit=commit if isinstance(commit, str) else None,
        date=date if isinstance(date, str) else None,
        results=results,
    )


def read_runs(paths: Sequence[Path]) -> list[Run]:
    """All runs, checked to be at least two distinct files of one machine key with the same benchmarks."""
    if len(paths) < 2:
        named = f" ({paths[0]})" if paths else ""
        raise InputError(f"need at least 2 runs to check that they agree, got {len(paths)}{named}")
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise InputError(f"{path}: given twice (also as {seen[resolved]}); each run must be its own file")
        seen[resolved] = path
    runs = [read_run(path) for path in paths]
    first = runs[0]
    for run in runs[1:]:
        if run.key != first.key:
            raise InputError(
                f"{run.path}: machine key {run.key!r}, but {first.path} is {first.key!r}; promote runs of one machine"
            )
    for run in runs:
        for other in runs:
            missing = sorted(set(other.results) - set(run.results))
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise InputError(f"{run.path}: lacks {missing[0]}{more}, which {other.path} has; a case failed there?")
    return runs


def problems(runs: Sequence[Run], *, tolerance: float, alpha: float, max_spread: float) -> list[str]:
    """Why these runs cannot be promoted, one line each; empty when they agree."""
    out: list[str] = []
    for name in sorted(runs[0].results):
        for run in runs:
            spread = run.results[name].spread
            if spread > max_spread:
                out.append(
                    f"not promoted: {name}: {run.path} spread {spread:.1%} is above --max-spread {max_spread:.1%}; "
                    f"rerun on a quiet machine"
                )
        for a, b in itertools.combinations(runs, 2):
            first, second = a.results[name].samples, b.results[name].samples
            if not decidable(len(first), len(second), alpha):
                out.append(
                    f"not promoted: {name}: {len(first)} vs {len(second)} rounds ({a.path}, {b.path}) can never "
                    f"differ significantly at alpha {alpha}; record at least 3 rounds"
                )
                continue
            row = compare(name, first, second, tolerance=tolerance, alpha=alpha)
            if row.verdict != OK:
                out.append(
                    f"not promoted: {name}: {b.path} {row.current:,.1f} img/s vs {a.path} {row.baseline:,.1f} img/s, "
                    f"change {row.change:+.1%} (tolerance {tolerance:.1%}, p={row.p_value:.2g}): the runs disagree"
                )
    return out


def median_entries(runs: Sequence[Run]) -> dict[str, bl.Entry]:
    """Per benchmark, the run with the median img/s (the lower middle one for an even count), as an entry."""
    entries: dict[str, bl.Entry] = {}
    for name in runs[0].results:
        ordered = sorted(runs, key=lambda run: run.results[name].img_per_s)
        run = ordered[(len(ordered) - 1) // 2]
        result = run.results[name]
        entries[name] = bl.Entry(
            img_per_s=result.img_per_s,
            samples=result.samples,
            provenance={
                "commit": run.commit,
                "date": run.date,
                "machine": run.info,
                "backend_flags": result.extra.get("backend_flags"),
                "settings": result.extra.get("settings"),
                "config": result.extra.get("config"),
                "promoted_from_runs": len(runs),
            },
        )
    return entries


def existing_baseline(directory: Path, key: str) -> bl.Baseline | None:
    """The committed baseline of this key, if any; the directory must exist."""
    if not directory.is_dir():
        raise InputError(f"{directory}: baseline directory does not exist (create it and commit it)")
    path = bl.baseline_path(directory, key)
    if not path.exists():
        return None
    try:
        old = bl.load(path)
    except bl.BaselineError as exc:
        raise InputError(str(exc)) from None
    if old.machine_key != key:
        raise InputError(f"{path}: records machine key {old.machine_key!r}, expected {key!r}")
    return old


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.05, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (0.05 = 5%), got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", nargs="+", type=Path, required=True, metavar="JSON", help="pytest-benchmark JSON files"
    )
    parser.add_argument(
        "--baseline-dir", type=Path, default=Path("baselines"), metavar="DIR", help="default: baselines"
    )
    parser.add_argument(
        "--tolerance",
        type=_fraction,
        default=DEFAULT_TOLERANCE,
        metavar="FRACTION",
        help=f"largest change between two runs that still agrees; default: {DEFAULT_TOLERANCE}",
    )
    parser.add_argument(
        "--alpha",
        type=_fraction,
        default=DEFAULT_ALPHA,
        metavar="P",
        help=f"significance level of the Mann-Whitney U test; default: {DEFAULT_ALPHA}",
    )
    parser.add_argument(
        "--max-spread",
        type=_fraction,
        default=0.05,
        metavar="FRACTION",
        help="largest IQR/median spread of a run's rounds; default: 0.05",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        runs = read_runs(args.runs)
        old = existing_baseline(args.baseline_dir, runs[0].key)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    found = problems(runs, tolerance=args.tolerance, alpha=args.alpha, max_spread=args.max_spread)
    if found:
        for line in found:
            print(line, file=sys.stderr)
        return REFUSED
    key = runs[0].key
    path = bl.baseline_path(args.baseline_dir, key)
    new, changes = bl.merge(old, key, median_entries(runs))
    try:
        bl.write_atomic(path, new)
    except (bl.BaselineError, OSError) as exc:
        print(f"error: {path}: not written: {exc}", file=sys.stderr)
        return BAD_INPUT
    lines = changes.lines()
    print(f"{len(runs)} runs agree on {len(runs[0].results)} benchmarks of {key}")
    print(f"wrote {path}: {lines[0]}")
    for line in lines[1:]:
        print(line)
    return WRITTEN


if __name__ == "__main__":
    sys.exit(main())
