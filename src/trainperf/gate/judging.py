"""The regression gate: compare this run's img/s with the committed baseline (and with the run that
``--benchmark-compare`` loads) and decide pass or fail. No pytest import: the plugin feeds it plain values,
runs the fresh processes it asks for (confirmation, recording) and turns its outcome into an exit status.

The policy itself is ``verdict``; the baseline file is ``baseline``; what a recording needs is ``recording``.
"""

from __future__ import annotations

import importlib.util
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainperf.gate import baseline as bl
from trainperf.gate.runs import RunError, parse_run
from trainperf.gate.verdict import (
    CONTENDED,
    DEFAULT_TOLERANCE,
    INCONCLUSIVE,
    MISSING,
    NEW,
    SLOWER_MACHINE,
    UNCONFIRMED,
    Comparison,
    compare,
    confirm,
    on_busy_machine,
    on_slower_machine,
)
from trainperf.machine.key import machine_key
from trainperf.machine.load import MachineLoad
from trainperf.results import Rates, Result
from trainperf.settings import Settings

# Exit statuses beside pytest's own (0 passed, 1 tests failed, 2 interrupted, 3 internal error, 4 usage error,
# 5 no tests collected): a refused recording is neither a regression nor bad input.
EXIT_OK = 0
EXIT_REGRESSED = 1
EXIT_BAD_INPUT = 4
EXIT_NOT_UPDATED = 6
EXIT_CONTENDED = 7  # no verdict: what looked regressed was measured on a busy machine


class GateInputError(Exception):
    """Bad gate input (a baseline file, a compared run); the message names the file and the problem."""


@dataclass
class Reference:
    """Something to compare with: the committed baseline or a run loaded by --benchmark-compare."""

    label: str
    path: Path
    baseline: bl.Baseline

    @property
    def against(self) -> str:
        return f"{self.label} {self.path.name}"


@dataclass
class GateState:
    key: str
    info: dict[str, Any]
    baseline_path: Path
    committed: Reference | None
    previous_runs: list[Reference] = field(default_factory=list)
    note: str = ""

    @property
    def references(self) -> list[Reference]:
        return ([self.committed] if self.committed else []) + self.previous_runs


@dataclass(frozen=True)
class Current:
    """One benchmark of one run, as the gate sees it: its result record, its tolerance marker, its test."""

    name: str
    record: Result
    tolerance: float | None = None  # from the trainperf_tolerance marker
    nodeid: str = ""

    @classmethod
    def of(cls, name: str, record: Result, tolerance: float | None, nodeid: str = "") -> Current | None:
        """A result as the gate sees it; None for a kind without throughput (compile time)."""
        return None if record.rates is None else cls(name, record, tolerance, nodeid)

    @property
    def img_per_s(self) -> float:
        """The run's median img/s."""
        return _rates(self.record).img_per_s

    @property
    def samples(self) -> tuple[float, ...]:
        """Img/s per timed round."""
        return _rates(self.record).img_per_s_rounds

    @property
    def spread(self) -> float:
        return _rates(self.record).img_per_s_spread or 0.0


def _rates(record: Result) -> Rates:
    if record.rates is None:
        raise ValueError(f"{record.identity.case_id}: a {record.KIND} result has no throughput to judge")
    return record.rates


@dataclass
class Outcome:
    rows: list[Comparison]
    failures: list[str]
    errors: list[str]
    notes: list[str]
    exit_code: int  # EXIT_OK, EXIT_REGRESSED, EXIT_BAD_INPUT, EXIT_NOT_UPDATED or EXIT_CONTENDED


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
            raise GateInputError(
                f"{directory}: baseline directory does not exist; expected an existing directory (create it and "
                "commit it)"
            )
        note = f"no baseline directory {directory}"
    elif path.exists():
        committed = _load_reference("baseline", path, key, settings.allow_mismatch)
    else:
        note = f"no baseline for this machine ({path.name})"
    state = GateState(key=key, info=info, baseline_path=path, committed=committed, note=note)
    for source, doc in compared_docs:
        state.previous_runs.append(_compared_reference(source, doc, key, settings.allow_mismatch))
    if (state.committed or state.previous_runs or settings.update_baselines) and importlib.util.find_spec(
        "scipy"
    ) is None:
        # Said now, not as an ImportError after every benchmark has run.
        raise GateInputError(
            "the regression gate needs scipy (a dependency of trainperf), which is not installed; expected scipy "
            "installed (install trainperf with pip, or pip install scipy)"
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
            f"{path}: recorded on machine key {theirs!r}, this machine is {ours!r}, and numbers from another "
            "machine are no baseline; expected one recorded on this machine (or --trainperf-allow-mismatch to "
            "compare anyway)"
        )


def _compared_reference(source: str, doc: Any, key: str, allow_mismatch: bool) -> Reference:
    """A pytest-benchmark run (autosave JSON) as a reference of one run of each trainperf benchmark."""
    try:
        run = parse_run(doc, source)
    except RunError as exc:
        raise GateInputError(str(exc)) from None
    _check_key(source, run.key, key, allow_mismatch)
    entries = {name: bl.Entry(r.img_per_s, r.samples) for name, r in run.results.items()}
    return Reference("previous run", Path(source), bl.Baseline(key, entries))


def tolerance_for(settings: Settings, current: Current, committed: bl.Baseline | None, name: str) -> float:
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


def judge(
    state: GateState,
    settings: Settings,
    results: list[Current],
    fresh: Mapping[str, Current] | None = None,
) -> list[Comparison]:
    """A verdict for every benchmark against every reference. ``fresh`` holds the confirming runs of suspects:
    given, a suspect stays REGRESSED only when its fresh run agrees."""
    current = {r.name: r for r in results}
    committed = state.committed.baseline if state.committed else None
    rows: list[Comparison] = []
    for ref in state.references:
        for name in sorted(set(ref.baseline.entries) - set(current)):
            rows.append(Comparison(name, MISSING, baseline=ref.baseline.entries[name].img_per_s, against=ref.against))
        for name, cur in current.items():
            entry = ref.baseline.entries.get(name)
            if entry is None:
                rows.append(Comparison(name, NEW, current=cur.img_per_s, against=ref.against))
                continue
            options = {"alpha": settings.alpha, "prior": settings.run_noise, "samples": cur.samples}
            row = compare(
                name,
                entry.run_medians,
                [cur.img_per_s],
                tolerance=tolerance_for(settings, cur, committed, name),
                against=ref.against,
                **options,
            )
            if row.failed and fresh is not None and name in fresh:
                row = confirm(row, entry.run_medians, [cur.img_per_s], [fresh[name].img_per_s], **options)
            rows.append(row)
    if state.committed is None:
        rows.extend(Comparison(name, NEW, current=cur.img_per_s, against="baseline") for name, cur in current.items())
    return rows


def load_of(current: Current) -> MachineLoad | None:
    """The load other work put on the machine while ``current`` was measured (None: not recorded)."""
    return current.record.identity.machine_load if current.record is not None else None


def busy(rows: list[Comparison], deciding: Mapping[str, Current], limit: float) -> dict[str, MachineLoad]:
    """Regressed benchmarks whose deciding measurement (the confirmation, else the first) was taken while other
    work took more than ``limit`` of the machine, with that load."""
    out = {}
    for name in suspects(rows):
        load = load_of(deciding[name]) if name in deciding else None
        if load is not None and load.busy > limit:
            out[name] = load
    return out


def mark_busy(rows: list[Comparison], loads: Mapping[str, MachineLoad]) -> list[Comparison]:
    """``rows`` with the regressions of ``loads`` turned into no verdict (CONTENDED)."""
    return [on_busy_machine(row, loads[row.name].busy) if row.name in loads else row for row in rows]


def machine_change(state: GateState, speed_now: float | None) -> float | None:
    """How much slower (negative) or faster the machine's speed probe is now than when the committed baseline was
    recorded; None without a probe on either side (a baseline recorded before probes existed)."""
    recorded = state.committed.baseline.machine_speed if state.committed else ()
    if not recorded or not speed_now:
        return None
    return speed_now / statistics.median(recorded) - 1


def mark_slower_machine(state: GateState, rows: list[Comparison], change: float | None) -> list[Comparison]:
    """``rows`` with the regressions against the committed baseline that the machine's own slowdown explains
    turned into no verdict (a --benchmark-compare run carries no probe: its rows stay as they are)."""
    if change is None or state.committed is None:
        return rows
    against = state.committed.against
    return [on_slower_machine(row, change) if row.against == against else row for row in rows]


def suspects(rows: list[Comparison]) -> list[str]:
    """Benchmarks that look regressed against some reference: what a confirmation measures again."""
    return sorted({row.name for row in rows if row.failed})


def decide(state: GateState, settings: Settings, rows: list[Comparison], *, notes: list[str] | None = None) -> Outcome:
    """Whether the run passes, from its verdicts (not for a recording run: see ``recorded``)."""
    notes = ([state.note] if state.note else []) + list(notes or [])
    failures = [row.line() for row in rows if row.failed]
    notes.extend(row.line() for row in rows if row.verdict in (INCONCLUSIVE, UNCONFIRMED))
    if settings.strict:
        if state.committed is None:
            failures.append(f"strict: {state.note or 'no baseline'}; record one with --trainperf-update-baselines")
        failures.extend(
            f"strict: {row.verdict}: {row.name} ({row.against})"
            for row in rows
            if row.verdict in (MISSING, INCONCLUSIVE)
        )
    busy = [row.line() for row in rows if row.verdict in (CONTENDED, SLOWER_MACHINE)]
    if failures:
        return Outcome(rows, failures, busy, notes, EXIT_REGRESSED)
    return Outcome(rows, [], busy, notes, EXIT_CONTENDED if busy else EXIT_OK)


def recorded(state: GateState, rows: list[Comparison], written: list[str], refused: list[str]) -> Outcome:
    """The outcome of a recording run: the comparison is shown for information and never fails it; a refused
    recording has its own exit status."""
    notes = ([state.note] if state.note else []) + written
    return Outcome(rows, [], refused, notes, EXIT_NOT_UPDATED if refused else EXIT_OK)
