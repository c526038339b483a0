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
import sys
from collections.abc import Sequence
from pathlib import Path

from trainperf import baseline as bl
from trainperf.runs import RunError, SavedRun, load_run
from trainperf.verdict import DEFAULT_ALPHA, DEFAULT_TOLERANCE, REGRESSED, STALE, compare, decidable

WRITTEN, REFUSED, BAD_INPUT = 0, 1, 2


class InputError(Exception):
    """A run or the baseline directory cannot be used; the message names the file."""


def read_run(path: Path) -> SavedRun:
    """One pytest-benchmark JSON file, reduced to its trainperf throughput benchmarks."""
    try:
        run = load_run(path)
    except RunError as exc:
        raise InputError(str(exc)) from None
    if not run.results:
        raise InputError(f"{path}: no trainperf throughput benchmark (none has extra_info.img_per_s_rounds)")
    unknown = [name for name, r in run.results.items() if r.spread is None]
    if unknown:
        raise InputError(f"{path}: {unknown[0]}: no img_per_s_spread, which promotion checks")
    return run


def read_runs(paths: Sequence[Path]) -> list[SavedRun]:
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
                f"{run.source}: machine key {run.key!r}, but {first.source} is {first.key!r}; "
                f"promote runs of one machine"
            )
    for run in runs:
        for other in runs:
            missing = sorted(set(other.results) - set(run.results))
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                raise InputError(
                    f"{run.source}: lacks {missing[0]}{more}, which {other.source} has; a case failed there?"
                )
    return runs


def problems(runs: Sequence[SavedRun], *, tolerance: float, alpha: float, max_spread: float) -> list[str]:
    """Why these runs cannot be promoted, one line each; empty when they agree."""
    out: list[str] = []
    for name in sorted(runs[0].results):
        for run in runs:
            spread = run.results[name].spread
            if spread > max_spread:
                out.append(
                    f"not promoted: {name}: {run.source} spread {spread:.1%} is above --max-spread {max_spread:.1%}; "
                    f"rerun on a quiet machine"
                )
        for a, b in itertools.combinations(runs, 2):
            first, second = a.results[name].samples, b.results[name].samples
            if not decidable(len(first), len(second), alpha):
                out.append(
                    f"not promoted: {name}: {len(first)} vs {len(second)} rounds ({a.source}, {b.source}) can never "
                    f"differ significantly at alpha {alpha}; record at least 3 rounds"
                )
                continue
            row = compare(name, first, second, tolerance=tolerance, alpha=alpha)
            if row.verdict in (REGRESSED, STALE):  # only a significant difference
                out.append(
                    f"not promoted: {name}: {b.source} {row.current:,.1f} img/s vs {a.source} "
                    f"{row.baseline:,.1f} img/s, "
                    f"change {row.change:+.1%} (tolerance {tolerance:.1%}, p={row.p_value:.2g}): the runs disagree"
                )
    return out


def median_entries(runs: Sequence[SavedRun]) -> dict[str, bl.Entry]:
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
