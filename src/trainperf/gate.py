"""The regression gate: compare this run's img/s with the committed baseline (and with the run that
``--benchmark-compare`` loads), decide pass or fail, and record new baselines.  No pytest import: the plugin
feeds it plain values and turns its outcome into an exit status and a summary.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainperf import baseline as bl
from trainperf.machine_key import machine_key
from trainperf.runs import RunError, parse_run
from trainperf.settings import Settings
from trainperf.verdict import DEFAULT_TOLERANCE, INCONCLUSIVE, MISSING, NEW, Comparison, compare, decidable


class GateInputError(Exception):
    """Bad gate input (a baseline file, a compared run); the message names the file and the problem."""


@dataclass
class Reference:
    """Something to compare with: the committed baseline or a run loaded by --benchmark-compare."""

    label: str
    path: Path
    baseline: bl.Baseline


@dataclass
class GateState:
    key: str
    info: dict[str, Any]
    baseline_path: Path
    committed: Reference | None
    previous_runs: list[Reference] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Current:
    """One benchmark of this run, as the gate sees it."""

    name: str
    samples: tuple[float, ...]
    img_per_s: float
    spread: float
    tolerance: float | None  # from the trainperf_tolerance marker
    extra: dict[str, Any]


@dataclass
class Outcome:
    rows: list[Comparison]
    failures: list[str]
    errors: list[str]
    notes: list[str]
    exit_code: int  # 0 pass, 1 regression or strict failure, 4 bad input


def prepare(settings: Settings, rootdir: Path, info: dict[str, Any], compared_docs: list[tuple[str, Any]]) -> GateState:
    """Find and validate what this run is compared with, before any benchmark runs."""
    key = machine_key(info)
    directory = Path(settings.baseline_dir)
    if not directory.is_absolute():
        directory = rootdir / directory
    path = bl.baseline_path(directory, key)
    committed: Reference | None = None
    note = ""
    if settings.baseline is not None:
        if settings.update_baselines:
            raise GateInputError(
                "--trainperf-update-baselines records into this machine's own file; it cannot be combined with "
                "--trainperf-baseline"
            )
        path = Path(settings.baseline)
        committed = _load_reference("baseline", path, key, settings.allow_mismatch)
    elif not directory.is_dir():
        if settings.baseline_dir != "baselines" or settings.update_baselines:
            raise GateInputError(f"{directory}: baseline directory does not exist")
        note = f"no baseline directory {directory}"
    elif path.exists():
        committed = _load_reference("baseline", path, key, settings.allow_mismatch)
    else:
        note = f"no baseline for this machine ({path.name})"
    state = GateState(key=key, info=info, baseline_path=path, committed=committed, note=note)
    for source, doc in compared_docs:
        state.previous_runs.append(_compared_reference(source, doc, key, settings.allow_mismatch))
    if (state.committed or state.previous_runs) and importlib.util.find_spec("scipy") is None:
        # Said now, not as an ImportError after every benchmark has run.
        raise GateInputError(
            f"the regression gate compares with {(state.committed or state.previous_runs[0]).path} and needs scipy "
            f"(a dependency of trainperf), which is not installed; install trainperf with pip, or pip install scipy"
        )
    return state


def _load_reference(label: str, path: Path, key: str, allow_mismatch: bool) -> Reference:
    try:
        baseline = bl.load(path)
    except bl.BaselineError as exc:
        raise GateInputError(str(exc)) from None
    _check_key(path, baseline.machine_key, key, allow_mismatch)
    return Reference(label, path, baseline)


def _check_key(path: Path | str, theirs: str, ours: str, allow_mismatch: bool) -> None:
    if theirs != ours and not allow_mismatch:
        raise GateInputError(
            f"{path}: recorded on machine key {theirs!r}, this machine is {ours!r}; numbers from another machine "
            f"are no baseline (pass --trainperf-allow-mismatch to compare anyway)"
        )


def _compared_reference(source: str, doc: Any, key: str, allow_mismatch: bool) -> Reference:
    """A pytest-benchmark run (autosave JSON) as a baseline of the img/s its trainperf benchmarks recorded."""
    try:
        run = parse_run(doc, source)
    except RunError as exc:
        raise GateInputError(str(exc)) from None
    _check_key(source, run.key, key, allow_mismatch)
    entries = {name: bl.Entry(r.img_per_s, r.samples) for name, r in run.results.items()}
    return Reference("previous run", Path(source), bl.Baseline(key, entries))


def _tolerance(settings: Settings, current: Current, committed: bl.Baseline | None, name: str) -> float:
    """Command line (or ini), then the benchmark's marker, then its entry in the committed baseline, then that
    file's default, then 5% -- the same for the committed baseline and for a --benchmark-compare run."""
    entry = committed.entries.get(name) if committed else None
    for candidate in (
        settings.tolerance,
        current.tolerance,
        entry.tolerance if entry else None,
        committed.default_tolerance if committed else None,
    ):
        if candidate is not None:
            return candidate
    return DEFAULT_TOLERANCE


def evaluate(state: GateState, settings: Settings, results: list[Current], session_failed: int) -> Outcome:
    """Verdicts for every benchmark against every reference, and whether the run passes."""
    current = {r.name: r for r in results}
    rows: list[Comparison] = []
    failures: list[str] = []
    errors: list[str] = []
    notes = [state.note] if state.note else []
    references = ([state.committed] if state.committed else []) + state.previous_runs
    committed = state.committed.baseline if state.committed else None
    for ref in references:
        against = f"{ref.label} {ref.path.name}"
        for name in sorted(set(ref.baseline.entries) - set(current)):
            rows.append(Comparison(name, MISSING, baseline=ref.baseline.entries[name].img_per_s, against=against))
        for name, cur in current.items():
            entry = ref.baseline.entries.get(name)
            if entry is None:
                rows.append(Comparison(name, NEW, current=cur.img_per_s, against=against))
                continue
            if not decidable(len(entry.samples), len(cur.samples), settings.alpha):
                errors.append(
                    f"{name}: {len(entry.samples)} vs {len(cur.samples)} rounds ({against}) can never be significant "
                    f"at alpha {settings.alpha}; record and run at least 3 rounds a side (more for power)"
                )
                continue
            row = compare(
                name,
                entry.samples,
                cur.samples,
                tolerance=_tolerance(settings, cur, committed, name),
                alpha=settings.alpha,
                against=against,
            )
            rows.append(row)
            if row.failed:
                failures.append(row.line())
            elif row.verdict == INCONCLUSIVE:
                notes.append(f"{row.line()}; rerun with more rounds (--trainperf-rounds) or longer windows to decide")
    if state.committed is None:
        rows.extend(Comparison(name, NEW, current=cur.img_per_s, against="baseline") for name, cur in current.items())
    if settings.update_baselines:
        # Re-recording: the comparison is shown for information and the new numbers become the reference, so
        # neither a drop nor strict mode's "no baseline"/"missing" (entries not run are kept) fails the run.
        failures = []
        if not errors:
            notes.extend(record(state, settings, results, session_failed, errors))
    elif settings.strict:
        if state.committed is None:
            failures.append(f"strict: {state.note or 'no baseline'}; record one with --trainperf-update-baselines")
        failures.extend(
            f"strict: {row.verdict}: {row.name} ({row.against})"
            for row in rows
            if row.verdict in (MISSING, INCONCLUSIVE)
        )
    exit_code = 4 if errors else (1 if failures else 0)
    return Outcome(rows, failures, errors, notes, exit_code)


def record(
    state: GateState, settings: Settings, results: list[Current], session_failed: int, errors: list[str]
) -> list[str]:
    """Write this run into the machine's baseline file, or say why not (adding to ``errors``)."""
    path = state.baseline_path
    if not settings.force_update:
        if session_failed:
            errors.append(f"{path}: not updated: {session_failed} case(s) failed (use --trainperf-force-update)")
            return []
        noisy = [r for r in results if r.spread > settings.max_update_spread]
        if noisy:
            worst = ", ".join(f"{r.name} {r.spread:.1%}" for r in noisy[:5])
            errors.append(
                f"{path}: not updated: round-to-round spread above {settings.max_update_spread:.0%} in {worst}; "
                f"rerun on a quiet machine, or use --trainperf-force-update"
            )
            return []
    if not results:
        errors.append(f"{path}: not updated: no throughput benchmark ran")
        return []
    short = [r.name for r in results if not decidable(len(r.samples), len(r.samples), settings.alpha)]
    if short:
        errors.append(f"{path}: not updated: too few rounds to gate on later in {', '.join(short[:5])}")
        return []
    provenance = {"commit": _git_commit(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    entries = {
        r.name: bl.Entry(
            img_per_s=r.img_per_s,
            samples=r.samples,
            tolerance=None,  # a marker stays in the code; tolerances set in the file carry over in merge()
            provenance={
                **provenance,
                "machine": state.info,
                "backend_flags": r.extra.get("backend_flags"),
                "settings": r.extra.get("settings"),
                "config": r.extra.get("config"),
            },
        )
        for r in results
    }
    old = state.committed.baseline if state.committed and state.committed.path == path else None
    if old is None and path.exists():
        try:
            old = bl.load(path)
        except bl.BaselineError as exc:
            errors.append(f"not updated: {exc}")
            return []
    new, changes = bl.merge(old, state.key, entries)
    try:
        bl.write_atomic(path, new)
    except (bl.BaselineError, OSError) as exc:
        errors.append(f"{path}: not updated: {exc}")
        return []
    return [f"wrote {path}: " + changes.lines()[0], *changes.lines()[1:]]


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def table_lines(rows: list[Comparison]) -> list[str]:
    """The verdict table, one row per benchmark and reference."""
    import pandas as pd

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:+.1%}"

    frame = pd.DataFrame(
        [
            {
                "benchmark": r.name,
                "against": r.against,
                "baseline img/s": "" if r.baseline is None else f"{r.baseline:,.1f}",
                "current img/s": "" if r.current is None else f"{r.current:,.1f}",
                "change": pct(r.change),
                "tolerance": "" if r.tolerance is None else f"{r.tolerance:.1%}",
                "p": "" if r.p_value is None else f"{r.p_value:.2g}",
                "verdict": r.verdict,
            }
            for r in rows
        ]
    )
    return frame.to_string(index=False).splitlines()
