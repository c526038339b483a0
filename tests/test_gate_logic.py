"""gate.judge / decide / recorded with plain values: tolerance precedence, confirmation, strict mode, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainperf import results
from trainperf.gate import baseline as bl
from trainperf.gate import judging as gate
from trainperf.gate.judging import Current, GateState, Reference, decide, judge, recorded, suspects, tolerance_for
from trainperf.gate.verdict import INCONCLUSIVE, MISSING, NEW, OK, REGRESSED, UNCONFIRMED
from trainperf.settings import Settings

NAME = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
OTHER = "test_dataloader[cpu-w0-nopin]"
# Six agreeing reference runs: the tolerance, not the noise, sets every threshold below (at alpha 0.02 five
# would leave a 5.1% threshold).
RUNS = (1000.0, 1010.0, 990.0, 1005.0, 995.0, 1000.0)
ROUNDS = (990.0, 995.0, 1000.0, 1005.0, 1010.0)


def _current(factor: float, tolerance: float | None = None, name: str = NAME) -> Current:
    rounds = tuple(v * factor for v in ROUNDS)
    rates = results.Rates(img_per_s=1000.0 * factor, img_per_s_rounds=rounds, img_per_s_spread=0.01)
    return Current(name, results.TrainStep(identity=results.Identity(case_id=name), throughput=rates), tolerance)


def _entry(tolerance: float | None = None, runs: tuple[float, ...] = RUNS) -> bl.Entry:
    return bl.Entry(1000.0, ROUNDS, tolerance, runs=runs)


def _state(
    tmp_path: Path, entry_tolerance=None, default_tolerance=None, previous=False, runs=RUNS, committed=True
) -> GateState:
    baseline = bl.Baseline("k", {NAME: _entry(entry_tolerance, runs)}, default_tolerance)
    reference = Reference("baseline", tmp_path / "k.json", baseline) if committed else None
    state = GateState("k", {}, tmp_path / "k.json", reference, note="" if committed else "no baseline for k.json")
    if previous:
        # A --benchmark-compare run: one run of each benchmark.
        state.previous_runs.append(
            Reference("previous run", Path("run.json"), bl.Baseline("k", {NAME: bl.Entry(1000.0, ROUNDS)}))
        )
    return state


def _exit(state: GateState, settings: Settings, results: list[Current]) -> int:
    return decide(state, settings, judge(state, settings, results)).exit_code


def test_tolerance_precedence(tmp_path):
    drop = _current(0.85)  # 15% slower
    assert _exit(_state(tmp_path), Settings(), [drop]) == gate.EXIT_REGRESSED
    assert _exit(_state(tmp_path, default_tolerance=0.2), Settings(), [drop]) == gate.EXIT_OK
    assert _exit(_state(tmp_path, entry_tolerance=0.1, default_tolerance=0.2), Settings(), [drop]) == 1
    assert _exit(_state(tmp_path, entry_tolerance=0.1), Settings(), [_current(0.85, 0.2)]) == 0
    assert _exit(_state(tmp_path, entry_tolerance=0.2), Settings(tolerance=0.1), [_current(0.85, 0.3)]) == 1


def test_tolerance_for_order():
    committed = bl.Baseline("k", {NAME: _entry(0.08)}, default_tolerance=0.12)
    marked, unmarked = _current(1.0, 0.2), _current(1.0)
    assert tolerance_for(Settings(tolerance=0.01), marked, committed, NAME) == 0.01
    assert tolerance_for(Settings(), marked, committed, NAME) == 0.2
    assert tolerance_for(Settings(), unmarked, committed, NAME) == 0.08
    assert tolerance_for(Settings(), unmarked, committed, OTHER) == 0.12
    assert tolerance_for(Settings(), unmarked, bl.Baseline("k", {}), NAME) == 0.05
    assert tolerance_for(Settings(), unmarked, None, NAME) == 0.05


def test_compared_run_uses_the_committed_tolerances(tmp_path):
    state = _state(tmp_path, entry_tolerance=0.2, previous=True)
    rows = judge(state, Settings(), [_current(0.85)])
    assert [(r.against, r.verdict, r.tolerance, r.runs) for r in rows] == [
        ("baseline k.json", OK, 0.2, (6, 1)),
        ("previous run run.json", OK, 0.2, (1, 1)),
    ]
    assert decide(state, Settings(), rows).exit_code == 0


def test_regression_against_the_previous_run_alone_fails(tmp_path):
    state = _state(tmp_path, previous=True, committed=False)
    outcome = decide(state, Settings(), judge(state, Settings(), [_current(0.8)]))
    assert outcome.exit_code == gate.EXIT_REGRESSED
    assert [(r.verdict, r.against) for r in outcome.rows] == [(REGRESSED, "previous run run.json"), (NEW, "baseline")]
    assert outcome.failures[0].startswith(f"{REGRESSED}: {NAME}: previous run run.json 1,000.0 img/s")
    assert outcome.notes[0] == "no baseline for k.json"


def test_new_and_missing_benchmarks(tmp_path):
    state = _state(tmp_path)
    rows = judge(state, Settings(), [_current(1.0, name=OTHER)])
    assert [(r.name, r.verdict) for r in rows] == [(NAME, MISSING), (OTHER, NEW)]
    assert rows[0].baseline == 1000.0 and rows[1].current == 1000.0
    assert decide(state, Settings(), rows).exit_code == 0


def test_a_confirmation_that_disagrees_passes_with_a_note(tmp_path):
    state = _state(tmp_path)
    first = judge(state, Settings(), [_current(0.85)])
    assert [r.verdict for r in first] == [REGRESSED] and suspects(first) == [NAME]
    rows = judge(state, Settings(), [_current(0.85)], fresh={NAME: _current(1.0)})
    assert [r.verdict for r in rows] == [UNCONFIRMED] and suspects(rows) == []
    assert rows[0].first == pytest.approx(-0.15, abs=1e-3) and rows[0].confirmation == pytest.approx(0.0, abs=1e-3)
    outcome = decide(state, Settings(), rows, notes=["confirmation: 1 benchmark"])
    assert outcome.exit_code == gate.EXIT_OK and outcome.failures == []
    assert outcome.notes[0] == "confirmation: 1 benchmark"
    assert outcome.notes[1].startswith(f"{UNCONFIRMED}: {NAME}: baseline k.json")
    assert "confirmation in a fresh process +0.0%" in outcome.notes[1]


def test_a_confirmation_that_agrees_fails(tmp_path):
    state = _state(tmp_path)
    rows = judge(state, Settings(), [_current(0.85)], fresh={NAME: _current(0.87)})
    assert [r.verdict for r in rows] == [REGRESSED] and rows[0].runs == (6, 2)
    outcome = decide(state, Settings(), rows)
    assert outcome.exit_code == gate.EXIT_REGRESSED
    assert "first run -15.0%, confirmation in a fresh process -13.0%" in outcome.failures[0]


def test_a_fresh_run_of_another_benchmark_confirms_nothing(tmp_path):
    rows = judge(_state(tmp_path), Settings(), [_current(0.85)], fresh={OTHER: _current(1.0, name=OTHER)})
    assert [r.verdict for r in rows] == [REGRESSED] and rows[0].confirmation is None


def test_missing_fails_only_strict(tmp_path):
    state = _state(tmp_path)
    rows = judge(state, Settings(), [])
    assert [r.verdict for r in rows] == [MISSING]
    assert decide(state, Settings(), rows).exit_code == 0
    strict = decide(state, Settings(strict=True), rows)
    assert strict.exit_code == 1 and strict.failures == [f"strict: {MISSING}: {NAME} (baseline k.json)"]


def test_a_drop_inside_the_noise_is_noted_and_fails_strict(tmp_path):
    # A baseline of one run (schema 1): the default noise puts the threshold near 18.3%, so 8% is undecided.
    state = _state(tmp_path, runs=())
    rows = judge(state, Settings(), [_current(0.92)])
    assert [r.verdict for r in rows] == [INCONCLUSIVE] and rows[0].underpowered
    outcome = decide(state, Settings(), rows)
    assert outcome.exit_code == 0 and outcome.failures == []
    assert outcome.notes[-1].startswith(f"{INCONCLUSIVE}: {NAME}: baseline k.json")
    assert "noise hides drops between 5.0% and 18.3%" in outcome.notes[-1]
    strict = decide(state, Settings(strict=True), rows)
    assert strict.exit_code == 1 and strict.failures == [f"strict: {INCONCLUSIVE}: {NAME} (baseline k.json)"]


def test_no_baseline_passes_and_fails_strict(tmp_path):
    state = _state(tmp_path, committed=False)
    rows = judge(state, Settings(), [_current(0.5)])
    assert [(r.verdict, r.against) for r in rows] == [(NEW, "baseline")]
    loose = decide(state, Settings(), rows)
    assert loose.exit_code == 0 and loose.notes == ["no baseline for k.json"]
    strict = decide(state, Settings(strict=True), rows)
    assert strict.exit_code == 1
    assert strict.failures == ["strict: no baseline for k.json; record one with --trainperf-update-baselines"]


def test_alpha_and_run_noise_settings_reach_the_verdict(tmp_path):
    # A baseline of one run: at the default alpha (0.02) the threshold is 18.3%, at 0.05 it is 11.5%.
    state = _state(tmp_path, runs=())
    assert [r.verdict for r in judge(state, Settings(), [_current(0.75)])] == [REGRESSED]
    assert [r.verdict for r in judge(state, Settings(run_noise=0.08), [_current(0.75)])] == [INCONCLUSIVE]
    assert [r.verdict for r in judge(state, Settings(alpha=0.001), [_current(0.75)])] == [INCONCLUSIVE]
    assert [r.verdict for r in judge(state, Settings(), [_current(0.85)])] == [INCONCLUSIVE]
    assert [r.verdict for r in judge(state, Settings(alpha=0.05), [_current(0.85)])] == [REGRESSED]


def test_a_recording_never_fails_on_old_numbers_and_a_refusal_has_its_own_exit(tmp_path):
    state = _state(tmp_path)
    rows = judge(state, Settings(), [_current(0.5)])
    assert rows[0].failed
    written = recorded(state, rows, ["wrote k.json: added 0, updated 1, kept 0 not run"], [])
    assert written.exit_code == gate.EXIT_OK and written.failures == [] and written.errors == []
    assert written.notes == ["wrote k.json: added 0, updated 1, kept 0 not run"]
    refused = recorded(state, rows, [], ["k.json: baseline not updated: never settled"])
    assert refused.exit_code == gate.EXIT_NOT_UPDATED == 6
    assert refused.errors == ["k.json: baseline not updated: never settled"] and refused.failures == []


def test_a_gate_without_scipy_is_refused_before_any_benchmark_runs(tmp_path, monkeypatch):
    import importlib.util

    baselines = tmp_path / "baselines"
    baselines.mkdir()
    info = {"torch": "2.11.0", "cpu_model": "Test CPU", "cpu_count": 2}
    key = gate.machine_key(info)
    bl.write_atomic(bl.baseline_path(baselines, key), bl.Baseline(key, {NAME: _entry()}))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real_find_spec(name, *a)
    )
    with pytest.raises(gate.GateInputError, match=r"needs scipy .* not installed"):
        gate.prepare(Settings(baseline_dir=str(baselines)), tmp_path, info, [])
    # Without anything to compare with, a run needs no statistics and goes ahead.
    (tmp_path / "empty").mkdir()
    assert gate.prepare(Settings(baseline_dir=str(tmp_path / "empty")), tmp_path, info, []).committed is None


def test_prepare_loads_the_machines_baseline_with_its_runs(tmp_path):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    info = {"torch": "2.11.0", "cpu_model": "Test CPU", "cpu_count": 2}
    key = gate.machine_key(info)
    bl.write_atomic(bl.baseline_path(baselines, key), bl.Baseline(key, {NAME: _entry()}))
    state = gate.prepare(Settings(baseline_dir=str(baselines)), tmp_path, info, [])
    assert state.committed is not None and state.committed.baseline.entries[NAME].run_medians == RUNS
    other = bl.baseline_path(tmp_path, "elsewhere")
    bl.write_atomic(other, bl.Baseline("elsewhere", {NAME: _entry()}))
    with pytest.raises(gate.GateInputError, match=r"recorded on machine key 'elsewhere'"):
        gate.prepare(Settings(baseline=str(other)), tmp_path, info, [])
