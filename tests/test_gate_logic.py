"""gate.evaluate with plain values: tolerance precedence across references, strict and update interplay."""

from __future__ import annotations

from pathlib import Path

from trainperf import baseline as bl
from trainperf.gate import Current, GateState, Reference, evaluate
from trainperf.settings import Settings
from trainperf.verdict import INCONCLUSIVE, MISSING, NEW, OK, REGRESSED

NAME = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
BASE = tuple(1000.0 + i for i in range(10))


def _current(factor: float, tolerance: float | None = None) -> Current:
    samples = tuple(v * factor for v in BASE)
    return Current(NAME, samples, samples[5], 0.01, tolerance, {})


def _state(tmp_path: Path, entry_tolerance=None, default_tolerance=None, previous=False) -> GateState:
    committed = bl.Baseline("k", {NAME: bl.Entry(BASE[5], BASE, entry_tolerance)}, default_tolerance)
    state = GateState("k", {}, tmp_path / "k.json", Reference("baseline", tmp_path / "k.json", committed))
    if previous:
        state.previous_runs.append(
            Reference("previous run", Path("run.json"), bl.Baseline("k", {NAME: bl.Entry(BASE[5], BASE)}))
        )
    return state


def test_tolerance_precedence(tmp_path):
    drop = _current(0.85)  # 15% slower
    assert evaluate(_state(tmp_path), Settings(), [drop], 0).exit_code == 1
    assert evaluate(_state(tmp_path, default_tolerance=0.2), Settings(), [drop], 0).exit_code == 0
    assert evaluate(_state(tmp_path, entry_tolerance=0.1, default_tolerance=0.2), Settings(), [drop], 0).exit_code == 1
    assert evaluate(_state(tmp_path, entry_tolerance=0.1), Settings(), [_current(0.85, 0.2)], 0).exit_code == 0
    assert evaluate(_state(tmp_path, entry_tolerance=0.2), Settings(tolerance=0.1), [drop], 0).exit_code == 1


def test_compared_run_uses_the_committed_tolerances(tmp_path):
    outcome = evaluate(_state(tmp_path, entry_tolerance=0.2, previous=True), Settings(), [_current(0.85)], 0)
    assert [(r.against, r.verdict, r.tolerance) for r in outcome.rows] == [
        ("baseline k.json", OK, 0.2),
        ("previous run run.json", OK, 0.2),
    ]
    assert outcome.exit_code == 0


def test_regression_against_the_previous_run_alone_fails(tmp_path):
    state = _state(tmp_path, previous=True)
    state.committed = None
    outcome = evaluate(state, Settings(), [_current(0.8)], 0)
    assert outcome.exit_code == 1
    assert [r.verdict for r in outcome.rows] == [REGRESSED, NEW]
    assert outcome.failures[0].startswith(f"REGRESSED: {NAME}: previous run run.json")


def test_missing_and_strict(tmp_path):
    state = _state(tmp_path)
    outcome = evaluate(state, Settings(), [], 0)
    assert [r.verdict for r in outcome.rows] == [MISSING] and outcome.exit_code == 0
    strict = evaluate(state, Settings(strict=True), [], 0)
    assert strict.exit_code == 1 and strict.failures == [f"strict: {MISSING}: {NAME} (baseline k.json)"]


def test_update_records_and_does_not_fail_on_the_old_numbers(tmp_path):
    state = _state(tmp_path)
    outcome = evaluate(state, Settings(update_baselines=True, strict=True), [_current(0.5)], 0)
    assert outcome.exit_code == 0 and outcome.failures == []
    assert bl.load(tmp_path / "k.json").entries[NAME].img_per_s == BASE[5] * 0.5
    refused = evaluate(state, Settings(update_baselines=True), [_current(0.5)], session_failed=1)
    assert refused.exit_code == 4 and "1 case(s) failed" in refused.errors[0]


def test_a_drop_the_rounds_cannot_confirm_is_shown_and_fails_strict(tmp_path):
    # bimodal rounds: half 40% slower, half 5% faster; the estimate is a 20% drop, but p is about 0.5
    samples = tuple(v * 0.6 for v in BASE[:5]) + tuple(v * 1.05 for v in BASE[5:])
    noisy = Current(NAME, samples, sorted(samples)[5], 0.5, None, {})
    outcome = evaluate(_state(tmp_path), Settings(), [noisy], 0)
    assert [r.verdict for r in outcome.rows] == [INCONCLUSIVE] and outcome.exit_code == 0
    assert outcome.notes[-1].startswith(f"{INCONCLUSIVE}: {NAME}: baseline k.json")
    assert "rerun with more rounds" in outcome.notes[-1]
    strict = evaluate(_state(tmp_path), Settings(strict=True), [noisy], 0)
    assert strict.exit_code == 1 and strict.failures == [f"strict: {INCONCLUSIVE}: {NAME} (baseline k.json)"]


def test_a_gate_without_scipy_is_refused_before_any_benchmark_runs(tmp_path, monkeypatch):
    import importlib.util

    import pytest

    from trainperf import gate

    baselines = tmp_path / "baselines"
    baselines.mkdir()
    info = {"torch": "2.11.0", "cpu_model": "Test CPU", "cpu_count": 2}
    key = gate.machine_key(info)
    bl.write_atomic(bl.baseline_path(baselines, key), bl.Baseline(key, {NAME: bl.Entry(BASE[5], BASE)}))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real_find_spec(name, *a)
    )
    with pytest.raises(gate.GateInputError, match=r"needs scipy .* not installed"):
        gate.prepare(Settings(baseline_dir=str(baselines)), tmp_path, info, [])
    # Without anything to compare with, a run needs no statistics and goes ahead.
    (tmp_path / "empty").mkdir()
    assert gate.prepare(Settings(baseline_dir=str(tmp_path / "empty")), tmp_path, info, []).committed is None
