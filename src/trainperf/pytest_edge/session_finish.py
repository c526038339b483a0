"""The end of a pytest run: hand the finished results to the gate (judge, confirm, or record a baseline), write
the verdict JSON, set the exit status; then the summary: results table, verdict table, banner."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from trainperf.pytest_edge.state import PluginState, state_of


def finish(session: pytest.Session) -> None:
    """Judge the run, or record its baseline, when it is whole."""
    config = session.config
    state = state_of(config)
    # Nothing to judge after --collect-only or --setup-plan, an interrupted run, an internal or usage error: a
    # verdict (or a recorded baseline) from a partial run would be wrong.
    if state.gate is None or config.option.collectonly or config.option.setupplan or session.shouldstop:
        return
    if session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return
    from trainperf.gate import finish as gate_run

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


def summary(reporter: Any, config: pytest.Config) -> None:
    """The results table, then the gate's verdicts and banner."""
    state = state_of(config)
    if state.results:
        from trainperf.report.summary import format_results

        reporter.write_sep("-", "trainperf results (median img/s over rounds, spread = IQR/median)")
        for line in format_results(state.results):
            reporter.write_line(line)
    if state.outcome is not None and state.gate is not None:
        _verdicts(reporter, state)


def _verdicts(reporter: Any, state: PluginState) -> None:
    from trainperf.gate import verdict_report

    assert state.outcome is not None and state.gate is not None
    outcome, gate = state.outcome, state.gate
    where = gate.committed.path if gate.committed else gate.note
    reporter.write_sep("-", f"trainperf gate: machine key {gate.key}; baseline: {where}")
    if outcome.rows:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            lines = verdict_report.table_lines(outcome.rows)
        for line in [*lines, verdict_report.legend()]:
            reporter.write_line(line)
    for line in outcome.notes:
        reporter.write_line(line)
    _banner(reporter, outcome)


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
