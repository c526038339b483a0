"""Recording policy with plain values: when to measure again, stop or refuse, and the entries written."""

from __future__ import annotations

import math

import pytest

from trainperf.gate import baseline as bl
from trainperf.gate import recording
from trainperf.gate.recording import DONE, MORE, REFUSE, Plan, RunOf, entries, loose, next_step

A = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
B = "test_dataloader[cpu-w0-nopin]"
TOLERANCES = {A: 0.05, B: 0.05}


def _run(a: float, b: float | None = 500.0) -> dict[str, RunOf]:
    run = {A: RunOf(a, (a * 0.99, a, a * 1.01))}
    if b is not None:
        run[B] = RunOf(b, (b * 0.99, b, b * 1.01))
    return run


def _step(runs, *, elapsed_s=10.0, per_run_s=10.0, plan=None, tolerances=TOLERANCES):
    return next_step(runs, tolerances, elapsed_s=elapsed_s, per_run_s=per_run_s, plan=plan or Plan())


def test_more_before_min_runs():
    step = _step([_run(1000.0), _run(1001.0)])
    assert step.action == MORE and step.reason == "2 of at least 3 runs"


def test_refuses_when_min_runs_cannot_fit_in_the_budget():
    step = _step([_run(1000.0)], elapsed_s=150.0, per_run_s=100.0, plan=Plan(budget_s=200.0))
    assert step.action == REFUSE
    assert step.reason.startswith("never settled: only 1 of 3 runs fit in the 200 s budget (a run takes about 100 s")
    assert "--trainperf-record-budget-s" in step.reason
    # Exactly at the budget still fits.
    assert _step([_run(1000.0)], elapsed_s=100.0, per_run_s=100.0, plan=Plan(budget_s=200.0)).action == MORE


def test_refuses_a_run_that_lacks_a_benchmark():
    step = _step([_run(1000.0), _run(1000.0), _run(1000.0, None)])
    assert step.action == REFUSE and step.reason == f"run 3 (a fresh process) has no result for {B}"


def test_refuses_when_nothing_ran():
    assert _step([]).action == REFUSE
    assert _step([{}]).reason == "no throughput benchmark ran"


def test_done_when_every_threshold_is_down_to_its_tolerance():
    # At alpha 0.02 five agreeing runs are the fewest that bring a single run's threshold down to 5%.
    runs = [_run(1000.0), _run(1002.0), _run(998.0), _run(1001.0), _run(999.0)]
    assert loose(runs, TOLERANCES, Plan()) == []
    step = _step(runs)
    assert step.action == DONE and step.reason == "5 runs: every threshold is down to its tolerance"
    assert [w.split()[0] for w in loose(runs[:4], TOLERANCES, Plan())] == [B, A]


def test_three_agreeing_runs_are_not_enough_at_5_percent():
    # The prior's 3% on 2 degrees of freedom still weighs: at alpha 0.02, 3 identical runs leave a 7.0% threshold.
    runs = [_run(1000.0)] * 3
    wide = loose(runs, TOLERANCES, Plan())
    assert wide == [B + " 7.0%", A + " 7.0%"] == [B + _threshold_text(runs, B), A + _threshold_text(runs, A)]
    assert _step(runs).action == MORE
    assert _step(runs, tolerances={A: 0.06, B: 0.06}).action == MORE
    assert _step(runs, tolerances={A: 0.07, B: 0.07}).action == DONE
    # At alpha 0.05 they are down to 5.0x%.
    assert _step(runs, plan=Plan(alpha=0.05), tolerances={A: 0.06, B: 0.06}).action == DONE


def _threshold_text(runs, name: str = A) -> str:
    from scipy.stats import t

    from trainperf.gate.verdict import DEFAULT_ALPHA, run_noise

    # The threshold of one later run: t(1 - alpha, dof) * sigma * sqrt(1/n + 1), n reference runs (means).
    noise = run_noise([r[name].img_per_s for r in runs], runs[-1][name].samples)
    threshold = t.ppf(1 - DEFAULT_ALPHA, noise.dof) * noise.sigma * math.sqrt(1 / len(runs) + 1)
    return f" {-math.expm1(-max(threshold, -math.log1p(-0.05))):.1%}"


def test_more_while_wide_then_done_at_max_runs_with_the_noise_recorded():
    spread = [_run(1000.0), _run(1150.0), _run(870.0)]
    assert loose(spread, TOLERANCES, Plan()) == [B + " 7.0%", A + _threshold_text(spread)]
    step = _step(spread, plan=Plan(max_runs=5))
    assert step.action == MORE and step.reason.startswith("3 runs: still wider than the tolerance: ")
    five = [*spread, _run(1100.0), _run(950.0)]
    assert loose(five, TOLERANCES, Plan()) == [A + _threshold_text(five)]
    done = _step(five, plan=Plan(max_runs=5))
    assert done.action == DONE
    assert done.reason.startswith("5 runs (the most): noise recorded as measured; wider than the tolerance: ")
    assert A in done.reason and B not in done.reason


def test_done_when_the_budget_is_spent_after_min_runs():
    spread = [_run(1000.0), _run(1150.0), _run(870.0)]
    step = _step(spread, elapsed_s=190.0, per_run_s=20.0, plan=Plan(budget_s=200.0))
    assert step.action == DONE
    assert step.reason.startswith("3 runs (the time budget): noise recorded as measured")


def test_entries_carry_every_run_and_the_newest_rounds():
    runs = [_run(1000.0, 400.0), _run(1100.0, 500.0), _run(900.0, 600.0)]
    made = entries(runs, {A: {"commit": "abc"}})
    assert set(made) == {A, B}
    a = made[A]
    assert a.runs == (1000.0, 1100.0, 900.0) and a.run_medians == a.runs
    assert a.img_per_s == pytest.approx((1000.0 * 1100.0 * 900.0) ** (1 / 3))
    assert a.samples == runs[-1][A].samples
    assert a.provenance == {"commit": "abc", "runs_recorded": 3}
    assert made[B].provenance == {"runs_recorded": 3}
    assert made[B].img_per_s == pytest.approx((400.0 * 500.0 * 600.0) ** (1 / 3))


def test_write_merges_into_the_file(tmp_path):
    path = tmp_path / "k.json"
    made = entries([_run(1000.0), _run(1010.0)], {})
    lines, errors = recording.write(path, None, "k", made)
    assert errors == [] and lines[0] == f"wrote {path}: added 2, updated 0, kept 0 not run"
    assert bl.load(path).entries[A].runs == (1000.0, 1010.0)
    lines, errors = recording.write(tmp_path / "absent" / "k.json", None, "k", made)
    assert lines == [] and "baseline not updated" in errors[0] and "does not exist" in errors[0]
