"""A regression measured while other work took the machine: wait for quiet and measure again, or no verdict
(exit 7); and one the machine's own slowdown explains (its speed probe against the recorded one). Plain values
and a fake fresh process; nothing is measured."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from test_gate_logic import NAME, ROUNDS, _state
from trainperf import results
from trainperf.gate import baseline as bl
from trainperf.gate import finish as gate_run
from trainperf.gate import judging as gate
from trainperf.gate import verdict
from trainperf.gate.fresh_run import FreshRun
from trainperf.gate.judging import Current
from trainperf.gate.runs import SavedRun, Throughput
from trainperf.gate.verdict import CONTENDED, OK, REGRESSED, SLOWER_MACHINE, UNCONFIRMED
from trainperf.machine import load as ml
from trainperf.machine import speed as machine_speed
from trainperf.settings import Settings

QUIET = {"others": 0.01, "steal": 0.0, "seconds": 30.0}
BUSY = {"others": 0.4, "steal": 0.05, "seconds": 30.0}


def _record(factor: float, load: dict | None) -> results.TrainStep:
    """A train-step result measured while other work took ``load`` of the machine."""
    identity = results.Identity(case_id=NAME.split("[")[1].rstrip("]"), machine_load=ml.MachineLoad.from_dict(load))
    rounds = tuple(v * factor for v in ROUNDS)
    rates = results.Rates(img_per_s=1000.0 * factor, img_per_s_rounds=rounds, img_per_s_spread=0.01)
    return results.TrainStep(identity=identity, throughput=rates)


def _current(factor: float, load: dict | None) -> Current:
    return Current(NAME, _record(factor, load), nodeid=f"perf/x::{NAME}")


class FakeChild:
    """A fresh process that measures what it is told, one run per call."""

    def __init__(self, *runs: tuple[float, dict | None]) -> None:
        self.runs = list(runs)
        self.calls: list[list[str]] = []

    def measure(self, nodeids: list[str], timeout_s: float) -> FreshRun:
        self.calls.append(nodeids)
        factor, load = self.runs.pop(0)
        result = Throughput(_record(factor, load))
        return FreshRun(SavedRun("child", "k", {}, None, None, {NAME: result}), None, 40.0)


def _finish(tmp_path: Path, first: Current, child: FakeChild, settings: Settings | None = None) -> gate.Outcome:
    said: list[str] = []
    return gate_run.finish(_state(tmp_path), settings or Settings(), [first], 0, child, 60.0, said.append)  # type: ignore[arg-type]


@pytest.fixture
def quiet_soon(monkeypatch):
    waits: list[float] = []

    def wait(limit: float, deadline: float, probe_s: float = 10.0) -> ml.MachineLoad:
        waits.append(limit)
        return ml.MachineLoad(0.02, 0.0, probe_s)

    monkeypatch.setattr(ml, "wait_until_quiet", wait)
    return waits


def test_a_busy_confirmation_is_measured_again_once_the_machine_is_quiet(tmp_path, quiet_soon):
    child = FakeChild((0.80, BUSY), (0.99, QUIET))
    outcome = _finish(tmp_path, _current(0.85, QUIET), child)
    assert len(child.calls) == 2 and quiet_soon == [0.10]
    assert [r.verdict for r in outcome.rows] == [UNCONFIRMED] and outcome.exit_code == gate.EXIT_OK


def test_a_regression_confirmed_on_a_quiet_machine_still_fails(tmp_path, quiet_soon):
    child = FakeChild((0.80, BUSY), (0.84, QUIET))
    outcome = _finish(tmp_path, _current(0.85, BUSY), child)  # a busy first run does not matter once confirmed
    assert [r.verdict for r in outcome.rows] == [REGRESSED] and outcome.exit_code == gate.EXIT_REGRESSED
    assert outcome.rows[0].confirmation == pytest.approx(-0.16, abs=1e-3)


def test_a_machine_that_stays_busy_gives_no_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr(ml, "wait_until_quiet", lambda limit, deadline, probe_s=10.0: ml.MachineLoad(0.5, 0, 10))
    outcome = _finish(tmp_path, _current(0.85, QUIET), FakeChild((0.80, BUSY)))
    row = outcome.rows[0]
    assert row.verdict == CONTENDED and row.busy == pytest.approx(0.45) and not row.failed
    assert outcome.exit_code == gate.EXIT_CONTENDED and outcome.failures == []
    assert "other work took 45.0% of the machine's CPU" in outcome.errors[0]
    assert any("no quiet moment came" in note for note in outcome.notes)


def test_without_confirmation_a_busy_first_run_gives_no_verdict_and_a_quiet_one_fails(tmp_path):
    off = Settings(confirm=False)
    assert _finish(tmp_path, _current(0.85, BUSY), FakeChild(), off).exit_code == gate.EXIT_CONTENDED
    assert _finish(tmp_path, _current(0.85, QUIET), FakeChild(), off).exit_code == gate.EXIT_REGRESSED
    assert _finish(tmp_path, _current(0.85, None), FakeChild(), off).exit_code == gate.EXIT_REGRESSED  # older run


def test_the_busy_limit_is_a_setting_and_off_never_calls_a_machine_busy(tmp_path):
    assert _finish(tmp_path, _current(0.85, BUSY), FakeChild(), Settings(confirm=False, busy_limit=1.0)).exit_code == 1
    lenient = Settings(confirm=False, busy_limit=0.5)
    assert _finish(tmp_path, _current(0.85, BUSY), FakeChild(), lenient).exit_code == gate.EXIT_REGRESSED


def test_a_busy_machine_never_hides_a_pass_nor_masks_another_regression(tmp_path):
    state = _state(tmp_path)
    ok = gate.judge(state, Settings(), [_current(1.0, BUSY)])
    assert [r.verdict for r in ok] == [OK] and gate.busy(ok, {NAME: _current(1.0, BUSY)}, 0.1) == {}
    rows = gate.mark_busy(gate.judge(state, Settings(), [_current(0.85, BUSY)]), {})
    assert gate.decide(state, Settings(), rows).exit_code == gate.EXIT_REGRESSED


def test_a_recording_leaves_out_runs_measured_on_a_busy_machine(tmp_path):
    record = Settings(update_baselines=True, record_min_runs=3, record_max_runs=3)
    child = FakeChild((1.0, QUIET), (0.6, BUSY), (1.01, QUIET), (0.99, QUIET))
    outcome = _finish(tmp_path, _current(0.7, BUSY), child, record)
    assert outcome.exit_code == gate.EXIT_OK and len(child.calls) == 4
    written = bl.load(tmp_path / "k.json").entries[NAME]
    assert written.runs == pytest.approx((1000.0, 1010.0, 990.0))  # neither busy run: not the 0.7 nor the 0.6


def test_a_recording_on_a_machine_that_stays_busy_is_refused_saying_so(tmp_path):
    record = Settings(update_baselines=True, record_min_runs=2, record_budget_s=100)  # no room for a second run
    outcome = _finish(tmp_path, _current(1.0, BUSY), FakeChild(), record)
    assert outcome.exit_code == gate.EXIT_NOT_UPDATED and not (tmp_path / "k.json").exists()
    assert "run(s) left out: the machine was busy" in outcome.errors[0]


# --- a machine slower than at recording (its speed probe), with nothing visible in /proc ----------------------


def _with_speed(tmp_path: Path, speeds: tuple[float, ...]) -> gate.GateState:
    state = _state(tmp_path)
    assert state.committed is not None
    baseline = dataclasses.replace(state.committed.baseline, machine_speed=speeds)
    state.committed = dataclasses.replace(state.committed, baseline=baseline)
    return state


def test_a_drop_the_machines_own_slowdown_explains_gets_no_verdict():
    row = verdict.Comparison(NAME, REGRESSED, 1000.0, 720.0, -0.28, 0.05, 0.078, 0.1, 0.03, (5, 2))
    slower = verdict.on_slower_machine(row, -0.25)  # net of the machine: 0.72 / 0.75 = -4%
    assert slower.verdict == SLOWER_MACHINE and not slower.failed and slower.machine_change == -0.25
    assert "ran 25.0% slower than when the baseline was recorded" in slower.line()
    assert verdict.on_slower_machine(row, -0.05) == row  # within the probe's own noise: nothing changes
    worse = dataclasses.replace(row, change=-0.48, current=520.0)
    assert verdict.on_slower_machine(worse, -0.20) == worse  # net -35%: slower code on a slower machine


def test_the_gate_asks_the_probe_only_about_a_confirmed_regression(tmp_path, monkeypatch, quiet_soon):
    probes: list[float] = []

    def probe() -> float:
        probes.append(1)
        return 700.0

    monkeypatch.setattr(machine_speed, "probe", probe)
    state = _with_speed(tmp_path, (1000.0, 990.0, 1010.0))
    said: list[str] = []
    clean = gate_run.finish(state, Settings(), [_current(1.0, QUIET)], 0, FakeChild(), 60.0, said.append)
    assert clean.exit_code == gate.EXIT_OK and probes == []  # a clean run pays nothing
    child = FakeChild((0.74, QUIET))
    outcome = gate_run.finish(state, Settings(), [_current(0.72, QUIET)], 0, child, 60.0, said.append)  # type: ignore[arg-type]
    assert [r.verdict for r in outcome.rows] == [SLOWER_MACHINE] and probes == [1]
    assert outcome.exit_code == gate.EXIT_CONTENDED and "speed probe" in outcome.errors[0]


def test_without_recorded_probes_a_regression_stands(tmp_path, monkeypatch):
    monkeypatch.setattr(machine_speed, "probe", lambda: 700.0)
    outcome = _finish(tmp_path, _current(0.72, QUIET), FakeChild((0.74, QUIET)))
    assert [r.verdict for r in outcome.rows] == [REGRESSED] and outcome.exit_code == gate.EXIT_REGRESSED
    assert gate.machine_change(_with_speed(tmp_path, (1000.0, 1200.0, 800.0)), 700.0) == pytest.approx(-0.3)


def test_a_recording_keeps_the_probe_of_each_kept_run(tmp_path, monkeypatch):
    speeds = iter([1000.0, 1010.0, 990.0])
    monkeypatch.setattr(machine_speed, "probe", lambda: next(speeds))
    record = Settings(update_baselines=True, record_min_runs=3, record_max_runs=3)
    child = FakeChild((0.6, BUSY), (1.0, QUIET), (1.01, QUIET))
    assert _finish(tmp_path, _current(1.0, QUIET), child, record).exit_code == gate.EXIT_OK
    assert bl.load(tmp_path / "k.json").machine_speed == (1000.0, 1010.0, 990.0)  # none for the busy run
