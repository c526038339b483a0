"""The end of a gated ``pytest perf/`` run: judge, confirm suspects in a fresh process, or record a baseline
from several fresh-process runs. No pytest import: the plugin passes plain values and a ``say`` callback for
progress lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainperf.gate import baseline as bl
from trainperf.gate import fresh_run, recording
from trainperf.gate import judging as gate
from trainperf.gate.runs import SavedRun
from trainperf.gate.verdict import Comparison
from trainperf.machine import load as machine_load
from trainperf.machine import speed as machine_speed
from trainperf.settings import Settings


@dataclass(frozen=True)
class ChildContext:
    """How to start a fresh pytest process that measures what this one measured."""

    options: tuple[str, ...]
    rootdir: Path
    inifile: Path | None
    invocation_dir: Path

    def measure(self, nodeids: list[str], timeout_s: float) -> fresh_run.FreshRun:
        return fresh_run.measure(
            nodeids,
            self.options,
            rootdir=self.rootdir,
            inifile=self.inifile,
            invocation_dir=self.invocation_dir,
            timeout_s=timeout_s,
        )


def _as_current(run: SavedRun, like: dict[str, gate.Current]) -> dict[str, gate.Current]:
    """A fresh process's results as the gate sees them, with the tolerance markers of this run's."""
    out = {}
    for name, result in run.results.items():
        model = like.get(name)
        current = gate.Current.of(name, result.record, model.tolerance if model else None)
        if current is not None:
            out[name] = current
    return out


def finish(
    state: gate.GateState,
    settings: Settings,
    results: list[gate.Current],
    session_failed: int,
    child: ChildContext,
    main_run_s: float,
    say: Callable[[str], None],
) -> gate.Outcome:
    """The gate's outcome for this run (a recording's when --trainperf-update-baselines)."""
    if settings.update_baselines:
        return _record(state, settings, results, session_failed, child, main_run_s, say)
    rows = gate.judge(state, settings, results)
    notes: list[str] = []
    deciding = {r.name: r for r in results}
    if gate.suspects(rows) and settings.confirm:
        rows, deciding = _confirm(state, settings, results, rows, child, say, notes)
    rows = gate.mark_busy(rows, gate.busy(rows, deciding, settings.busy_limit))
    if gate.suspects(rows):  # still regressed on a quiet machine: is the machine itself slower than at recording?
        rows = gate.mark_slower_machine(state, rows, gate.machine_change(state, machine_speed.probe()))
    return gate.decide(state, settings, rows, notes=notes)


def _confirm(
    state: gate.GateState,
    settings: Settings,
    results: list[gate.Current],
    rows: list[Comparison],
    child: ChildContext,
    say: Callable[[str], None],
    notes: list[str],
) -> tuple[list[Comparison], dict[str, gate.Current]]:
    """Verdicts after measuring the suspects again in a fresh process, and the measurement deciding each.

    A confirmation taken while other work took the machine decides nothing: the gate waits for a quiet machine
    and measures those suspects again, within --trainperf-confirm-timeout-s in all."""
    by_name = {r.name: r for r in results}
    deadline = time.monotonic() + settings.confirm_timeout_s
    measured: dict[str, gate.Current] = {}
    suspects = gate.suspects(rows)
    say(
        f"trainperf: {len(suspects)} benchmark(s) look regressed; measuring them again in a fresh process "
        f"(--trainperf-confirm off skips this): {', '.join(suspects)}"
    )
    todo = suspects
    while True:
        fresh = child.measure([by_name[n].nodeid for n in todo if by_name[n].nodeid], deadline - time.monotonic())
        notes.append(f"confirmation of {', '.join(todo)} took {fresh.seconds:.0f} s")
        if fresh.run is not None:
            measured.update(_as_current(fresh.run, by_name))
            rows = gate.judge(state, settings, results, fresh=measured)
        if fresh.error:
            notes.append(
                f"confirmation: the fresh process {fresh.error}; the first verdict stands for what it did not measure"
            )
            break
        loads = gate.busy(rows, measured, settings.busy_limit)
        if not loads:
            break
        todo = sorted(loads)
        say(
            f"trainperf: the machine was busy while {', '.join(todo)} were confirmed "
            f"({max(loads.values(), key=lambda x: x.busy).describe()}); waiting for it to quiet down"
        )
        quiet = machine_load.wait_until_quiet(settings.busy_limit, deadline - fresh.seconds)
        if quiet is None or quiet.busy > settings.busy_limit:
            notes.append("confirmation: no quiet moment came within --trainperf-confirm-timeout-s to measure again")
            break
        if time.monotonic() + fresh.seconds > deadline:
            notes.append("confirmation: no time within --trainperf-confirm-timeout-s to measure again")
            break
    return rows, {**by_name, **measured}


def _keep_quiet_run(
    runs: list[dict[str, recording.RunOf]],
    speeds: list[float],
    measured: list[gate.Current],
    limit: float,
    say: Callable[[str], None],
) -> int:
    """Append a run to ``runs``, and the machine's speed probe right after it to ``speeds``, unless other work
    took more than ``limit`` of the machine while one of its benchmarks was measured; 1 for a run left out."""
    loads = [load for c in measured if (load := gate.load_of(c)) is not None]
    worst = max(loads, key=lambda load: load.busy, default=None)
    if worst is not None and worst.busy > limit:
        say(f"trainperf: recording: run {len(runs) + 1} left out, the machine was busy ({worst.describe()})")
        return 1
    runs.append({c.name: recording.RunOf(c.img_per_s, c.samples) for c in measured})
    speeds.append(machine_speed.probe())
    return 0


def _record(
    state: gate.GateState,
    settings: Settings,
    results: list[gate.Current],
    session_failed: int,
    child: ChildContext,
    main_run_s: float,
    say: Callable[[str], None],
) -> gate.Outcome:
    rows = gate.judge(state, settings, results)
    path = state.baseline_path
    if session_failed:
        return gate.recorded(state, rows, [], [f"{path}: baseline not updated: {session_failed} case(s) failed"])
    plan = recording.Plan(
        min_runs=settings.record_min_runs,
        max_runs=settings.record_max_runs,
        budget_s=settings.record_budget_s,
        alpha=settings.alpha,
        prior=settings.run_noise,
    )
    committed = state.committed.baseline if state.committed else None
    tolerances = {r.name: gate.tolerance_for(settings, r, committed, r.name) for r in results}
    by_name = {r.name: r for r in results}
    runs: list[dict[str, recording.RunOf]] = []
    speeds: list[float] = []
    busy_runs = _keep_quiet_run(runs, speeds, results, settings.busy_limit, say)
    started = time.monotonic() - main_run_s
    per_run_s = main_run_s
    while True:
        step = recording.next_step(
            runs, tolerances, elapsed_s=time.monotonic() - started, per_run_s=per_run_s, plan=plan, busy_runs=busy_runs
        )
        if step.action == recording.REFUSE:
            return gate.recorded(state, rows, [], [f"{path}: baseline not updated: {step.reason}"])
        if step.action == recording.DONE:
            break
        say(f"trainperf: recording: {step.reason}; run {len(runs) + 1} in a fresh process")
        # The budget bounds every run: a run slowed by another tenant may take far longer than the first did.
        left = plan.budget_s - (time.monotonic() - started)
        fresh = child.measure([r.nodeid for r in results], max(60.0, left))
        if fresh.run is None or fresh.error:
            if len(runs) >= plan.min_runs and fresh.run is None:  # out of time after enough runs: record those
                step = recording.Step(recording.DONE, f"{len(runs)} runs (run {len(runs) + 1} {fresh.error})")
                break
            return gate.recorded(
                state, rows, [], [f"{path}: baseline not updated: run {len(runs) + 1} (a fresh process) {fresh.error}"]
            )
        per_run_s = max(per_run_s, fresh.seconds)
        measured = list(_as_current(fresh.run, by_name).values())
        busy_runs += _keep_quiet_run(runs, speeds, measured, settings.busy_limit, say)
    base = recording.provenance_base()
    provenance = {
        r.name: bl.provenance(base["commit"], base["date"], state.info, r.record.identity)
        for r in results
        if r.record is not None
    }
    old = committed if state.committed and state.committed.path == path else None
    if old is None and path.exists():
        try:
            old = bl.load(path)
        except bl.BaselineError as exc:
            return gate.recorded(state, rows, [], [f"baseline not updated: {exc}"])
    entries = recording.entries(runs, provenance)
    written, errors = recording.write(path, old, state.key, entries, machine_speed=tuple(speeds))
    return gate.recorded(state, rows, [f"recording: {step.reason}", *written], errors)
