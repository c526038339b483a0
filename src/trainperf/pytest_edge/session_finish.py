"""The end of a pytest run: hand the finished results to the gate (judge, confirm, or record a baseline), write
the verdict JSON, set the exit status; then the summary: results table, skip reasons, verdict table, banner.
Also the saved JSON's case parameters, as plain values."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from trainperf.measurement.cases import Case, DistributedCase, LoaderCase
from trainperf.pytest_edge.state import PluginState, state_of

CASES = (Case, LoaderCase, DistributedCase)  # what trainperf parametrizes tests with


def finish(session: pytest.Session) -> None:
    """Judge the run, or record its baseline, when it is whole."""
    config = session.config
    state = state_of(config)
    if state.gate is None or config.option.collectonly or config.option.setupplan:
        return
    # Nothing to judge after an interrupted run, an internal or usage error: a verdict (or a recorded baseline)
    # from a partial run would be wrong. A recording says so: the person waited for a file that did not change.
    partial = _partial(session)
    if partial is not None:
        if state.settings.update_baselines:
            state.outcome = _not_updated(state, partial)
        return
    try:
        _judge(session, state)
    except KeyboardInterrupt:
        # Ctrl-C while the gate measures fresh processes: the child was killed with its group (child_process) and
        # the old baseline file stands (written by rename, or not at all). Said in the summary, exit status 2.
        if not state.settings.update_baselines:
            raise
        state.outcome = _not_updated(state, "interrupted (Ctrl-C) while recording")
        session.exitstatus = pytest.ExitCode.INTERRUPTED


def _partial(session: pytest.Session) -> str | None:
    """Why the run is not whole (so neither judged nor recorded), or None."""
    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        return "the run was interrupted"
    if session.shouldstop:
        return f"the run stopped early ({session.shouldstop})"
    if session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return f"the run ended with exit status {int(session.exitstatus)}"
    return None


def _not_updated(state: PluginState, why: str) -> Any:
    from trainperf.gate import judging as gate

    assert state.gate is not None
    path = state.gate.baseline_path
    return gate.recorded(state.gate, [], [], [f"{path}: baseline not updated: {why}"])


def _judge(session: pytest.Session, state: PluginState) -> None:
    from trainperf.gate import finish as gate_run

    config = session.config
    assert state.gate is not None
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    settings = state.settings
    with warnings.catch_warnings():  # a library's deprecation notice must not crash the verdict
        warnings.simplefilter("default")
        outcome = gate_run.finish(
            state.gate, settings, _current(state), session.testsfailed, _child(config), _elapsed(state), say
        )
    state.outcome = outcome
    if settings.verdict_json:
        _write_verdict(settings.verdict_json, state.gate.key, outcome)
    if outcome.exit_code and (session.exitstatus == pytest.ExitCode.OK or settings.update_baselines):
        session.exitstatus = outcome.exit_code


def _elapsed(state: PluginState) -> float:
    return time.monotonic() - state.started


def _current(state: PluginState) -> list[Any]:
    from trainperf.gate.judging import Current

    found = (Current.of(r.name, r.record, r.tolerance, r.nodeid) for r in state.results)
    return [c for c in found if c is not None]


def _child(config: pytest.Config) -> Any:
    """How to start a fresh pytest that measures as this one did: its trainperf options, plugins, ini, rootdir."""
    from trainperf.gate import finish as gate_run
    from trainperf.gate import fresh_run
    from trainperf.settings import OPTIONS

    valued = {o.cli for o in OPTIONS if not o.flag}
    args = [*fresh_run.addopts_tokens(), *config.invocation_params.args]
    return gate_run.ChildContext(
        options=tuple(fresh_run.child_arguments(args, valued)),
        rootdir=config.rootpath,
        inifile=config.inipath,
        invocation_dir=config.invocation_params.dir,
    )


def _write_verdict(path: str, key: str, outcome: Any) -> None:
    from trainperf.gate import verdict_report

    doc = verdict_report.document(
        outcome.rows, mode="baseline", machine_key=key, exit_code=outcome.exit_code, notes=outcome.notes
    )
    try:
        verdict_report.write(Path(path), doc)
    except OSError as exc:
        outcome.notes.append(f"--trainperf-verdict-json {path}: not written ({exc.strerror or exc})")


def plain_params(benchmarks: list[Any]) -> None:
    """Save each case parameter of pytest-benchmark's JSON as its id, the string in the test's name.

    pytest-benchmark saves a parameter json cannot encode as ``UNSERIALIZABLE[Case(...)]``, which its
    ``compare`` command then shows and groups by. The id rather than the case's fields: one plain value that
    ``--group-by param:trainperf_case`` can group, and the fields are already in the result's ``config``.
    A new dict: pytest-benchmark's is the test's own callspec.
    """
    from trainperf.pytest_edge.parametrize import CASE_FIXTURES

    for bench in benchmarks:
        params = bench.get("params") if isinstance(bench, dict) else None
        if not isinstance(params, dict):
            continue
        ids = {name: case.id for name in CASE_FIXTURES if isinstance(case := params.get(name), CASES)}
        if ids:
            bench["params"] = {**params, **ids}


def summary(reporter: Any, config: pytest.Config) -> None:
    """The results table, the reasons cases were skipped, then the gate's verdicts and banner."""
    from trainperf.pytest_edge.skips import skip_lines

    state = state_of(config)
    if state.results:
        from trainperf.report.summary import format_results

        reporter.write_sep("-", "trainperf results (median img/s over rounds, spread = IQR/median)")
        for line in format_results(state.results):
            reporter.write_line(line)
    for line in skip_lines(reporter.stats.get("skipped", ()), state.nodeids):
        reporter.write_line(line, yellow=True)
    if state.outcome is not None and state.gate is not None:
        _verdicts(reporter, state)


def _verdicts(reporter: Any, state: PluginState) -> None:
    from trainperf.gate import verdict_report

    assert state.outcome is not None and state.gate is not None
    outcome, gate = state.outcome, state.gate
    where = gate.committed.path if gate.committed else gate.note
    reporter.write_sep("-", f"trainperf gate: machine key {gate.key}; baseline: {where}")
    rows = _shown(outcome.rows, gate)
    if rows:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            lines = verdict_report.table_lines(rows)
        for line in [*lines, verdict_report.legend()]:
            reporter.write_line(line)
    for line in outcome.notes:
        if line != where:  # the heading says it
            reporter.write_line(line)
    _banner(reporter, outcome)


def _shown(rows: list[Any], gate: Any) -> list[Any]:
    """The verdict rows worth a line: without a committed baseline, a --benchmark-compare run already lists
    every benchmark with its img/s, and a second "new — no baseline" row each (what the heading says) would
    print the table twice over."""
    from trainperf.gate.verdict import NEW

    if gate.committed is not None or not gate.previous_runs:
        return rows
    return [row for row in rows if not (row.verdict == NEW and row.against == "baseline")]


def _banner(reporter: Any, outcome: Any) -> None:
    from trainperf.gate.judging import EXIT_CONTENDED, EXIT_NOT_UPDATED

    if outcome.exit_code == EXIT_NOT_UPDATED:
        reporter.write_sep("=", "trainperf: baseline not updated", red=True, bold=True)
    elif outcome.exit_code == EXIT_CONTENDED:
        reporter.write_sep("=", "trainperf: no verdict — the machine was busy", yellow=True, bold=True)
    elif outcome.failures or outcome.errors:
        reporter.write_sep("=", "trainperf gate FAILED", red=True, bold=True)
    for line in outcome.errors + outcome.failures:
        reporter.write_line(line, red=True)
    if outcome.exit_code == 0:
        reporter.write_line("trainperf gate: passed", green=True)
