"""``trainperf baseline record | promote | show``: the baseline's life cycle from the command line.

- ``record``: ``pytest perf/ --trainperf-update-baselines`` (several fresh-process runs, adaptive), so there is one
  way to record.
- ``promote``: saved runs (pytest-benchmark JSON, one file per run, e.g. autosaves of the default branch) become
  the noise evidence of this machine's entries: appended to the runs an entry has (the newest ``--keep``), or
  replacing them (``--replace``).
- ``show``: per benchmark, its runs, its between-run noise and what a single run can detect against it.

Exit status: 0 done, 2 bad input (one line naming the file), 6 baseline not updated (one line per reason).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from trainperf.gate import baseline as bl
from trainperf.gate.runs import RunError, SavedRun, load_run
from trainperf.gate.verdict import DEFAULT_ALPHA, DEFAULT_RUN_NOISE, DEFAULT_TOLERANCE, as_drop, bounds, run_noise

DONE, BAD_INPUT, NOT_UPDATED = 0, 2, 6


class InputError(Exception):
    """A run, a baseline or the directory cannot be used; the message names the file."""


def record(pytest_args: Sequence[str]) -> int:
    """Run the suite with --trainperf-update-baselines; its exit status is this command's."""
    args = list(pytest_args) or ["perf/"]
    return subprocess.call([sys.executable, "-m", "pytest", *args, "--trainperf-update-baselines"])


def read_runs(paths: Sequence[Path]) -> list[SavedRun]:
    """Saved runs of one machine key, each a distinct file, oldest first (by the run's datetime)."""
    if not paths:
        raise InputError("no run given")
    seen: dict[Path, Path] = {}
    runs = []
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise InputError(f"{path}: given twice (also as {seen[resolved]}); each run must be its own file")
        seen[resolved] = path
        try:
            run = load_run(path)
        except RunError as exc:
            raise InputError(str(exc)) from None
        if not run.results:
            raise InputError(f"{path}: no trainperf throughput benchmark (no train step, epoch, loader or DDP result)")
        runs.append(run)
    for run in runs[1:]:
        if run.key != runs[0].key:
            raise InputError(
                f"{run.source}: machine key {run.key!r}, but {runs[0].source} is {runs[0].key!r}; promote runs of "
                f"one machine"
            )
    return sorted(runs, key=lambda r: r.date or "")


def missing_cases(runs: Sequence[SavedRun]) -> list[str]:
    """Why these runs cannot be promoted together: a benchmark some run lacks (a case failed there)."""
    out = []
    names = set.union(*(set(r.results) for r in runs))
    for run in runs:
        for name in sorted(names - set(run.results)):
            out.append(f"{run.source}: no result for {name} (a failed or skipped case?)")
    return out


def promoted_entries(runs: Sequence[SavedRun]) -> dict[str, bl.Entry]:
    entries = {}
    for name in runs[0].results:
        newest = runs[-1]
        result = newest.results[name]
        entries[name] = bl.entry_from_runs(
            [(r.results[name].img_per_s, r.results[name].samples) for r in runs],
            {
                **bl.provenance(newest.commit, newest.date, newest.info, result.record.identity),
                "promoted_from_runs": len(runs),
            },
        )
    return entries


def existing(directory: Path, key: str) -> tuple[Path, bl.Baseline | None]:
    if not directory.is_dir():
        raise InputError(f"{directory}: baseline directory does not exist (create it and commit it)")
    path = bl.baseline_path(directory, key)
    if not path.exists():
        return path, None
    try:
        old = bl.load(path)
    except bl.BaselineError as exc:
        raise InputError(str(exc)) from None
    if old.machine_key != key:
        raise InputError(f"{path}: records machine key {old.machine_key!r}, expected {key!r}")
    return path, old


def promote(paths: Sequence[Path], directory: Path, *, keep: int, replace: bool) -> int:
    try:
        runs = read_runs(paths)
        path, old = existing(directory, runs[0].key)
    except InputError as exc:
        print(f"trainperf baseline promote: {exc}", file=sys.stderr)
        return BAD_INPUT
    problems = missing_cases(runs)
    if replace and len(runs) < 2:
        problems.append(f"--replace needs at least 2 runs to measure between-run noise, got {len(runs)}")
    if problems:
        for line in problems:
            print(f"trainperf baseline promote: baseline not updated: {line}", file=sys.stderr)
        return NOT_UPDATED
    new, changes = bl.merge(old, runs[0].key, promoted_entries(runs), accumulate=None if replace else keep)
    try:
        bl.write_atomic(path, new)
    except (bl.BaselineError, OSError) as exc:
        print(f"trainperf baseline promote: {path}: baseline not updated: {exc}", file=sys.stderr)
        return NOT_UPDATED
    lines = changes.lines()
    how = "replacing their runs" if replace else f"appended, keeping the newest {keep} runs"
    print(f"{len(runs)} runs of {runs[0].key} ({how})")
    print(f"wrote {path}: {lines[0]}")
    for line in lines[1:]:
        print(line)
    return DONE


def show_lines(baseline: bl.Baseline, *, alpha: float = DEFAULT_ALPHA, prior: float = DEFAULT_RUN_NOISE) -> list[str]:
    """Per benchmark: img/s, runs, measured and pooled between-run noise, threshold and detectable drop of a
    single run at the entry's tolerance."""
    import pandas as pd

    rows = []
    for name, entry in sorted(baseline.entries.items()):
        tolerance = entry.tolerance or baseline.default_tolerance or DEFAULT_TOLERANCE
        noise = run_noise(entry.run_medians, entry.samples, prior=prior)
        threshold, detectable, _ = bounds(noise, tolerance=tolerance, alpha=alpha)
        rows.append(
            {
                "benchmark": name,
                "img/s": f"{entry.img_per_s:,.1f}",
                "runs": len(entry.run_medians),
                "measured noise": "-" if noise.measured is None else f"{noise.measured:.1%}",
                "noise used": f"{noise.sigma:.1%}",
                "tolerance": f"{tolerance:.1%}",
                "threshold": f"-{as_drop(threshold):.1%}",
                "detectable": f"-{as_drop(detectable):.1%}",
            }
        )
    if not rows:
        return ["(no benchmarks)"]
    return pd.DataFrame(rows).to_string(index=False).splitlines()


def show(paths: Sequence[Path], *, alpha: float, prior: float) -> int:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    if not files:
        print(f"trainperf baseline show: no baseline files in {', '.join(map(str, paths))}", file=sys.stderr)
        return BAD_INPUT
    for path in files:
        try:
            baseline = bl.load(path)
        except bl.BaselineError as exc:
            print(f"trainperf baseline show: {exc}", file=sys.stderr)
            return BAD_INPUT
        print(f"{path}: machine key {baseline.machine_key}")
        for line in show_lines(baseline, alpha=alpha, prior=prior):
            print(line)
    return DONE
