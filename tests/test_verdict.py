"""The comparison rule with plain values, and its error rates on simulated realistic noise."""

from __future__ import annotations

import pytest

from trainperf.verdict import (
    INCONCLUSIVE,
    MISSING,
    OK,
    REGRESSED,
    STALE,
    Comparison,
    compare,
    detection_rate,
    shift_ratio,
)


def test_shift_ratio_is_the_median_pairwise_ratio():
    assert shift_ratio([100.0], [90.0]) == pytest.approx(0.9)
    assert shift_ratio([100.0, 100.0, 100.0], [90.0, 90.0, 500.0]) == pytest.approx(0.9)  # robust to one outlier


def test_clear_drop_regresses_with_evidence():
    base = [1000.0, 1010.0, 990.0, 1005.0, 995.0, 1002.0, 998.0, 1008.0, 992.0, 1000.0]
    cur = [v * 0.85 for v in base]
    row = compare("test_x[a]", base, cur)
    assert row.verdict == REGRESSED and row.failed
    assert row.change == pytest.approx(-0.15, abs=0.01)
    assert row.p_value < 0.001 and row.rounds == (10, 10)
    line = row.line()
    assert line.startswith("REGRESSED: test_x[a]: baseline 1,000.0 img/s, current 850.0 img/s, change -15.0%")
    assert "tolerance 5.0%" in line and "Mann-Whitney U, 10 vs 10 rounds" in line


def test_drop_within_tolerance_is_ok_even_if_significant():
    base = [1000.0 + i for i in range(10)]
    cur = [v * 0.97 for v in base]
    row = compare("t", base, cur)
    assert row.verdict == OK and row.p_value < 0.05


def test_large_but_not_significant_drop_is_inconclusive_not_ok():
    # 3 rounds a side that overlap: the estimate is a 40% drop, but one current round beats a baseline round
    row = compare("t", [3000.0, 10000.0, 15000.0], [4000.0, 4800.0, 9000.0])
    assert row.change < -0.3 and row.p_value > 0.05
    assert row.verdict == INCONCLUSIVE and not row.failed
    assert row.line().startswith(f"{INCONCLUSIVE}: t: baseline 10,000.0 img/s, current 4,800.0 img/s, change -")


def test_noise_within_tolerance_is_ok_not_inconclusive():
    row = compare("t", [1000.0, 1040.0, 960.0], [990.0, 1030.0, 950.0])
    assert row.p_value > 0.05 and -0.05 < row.change < 0 and row.verdict == OK


def test_large_but_not_significant_rise_is_ok():
    row = compare("t", [4000.0, 4800.0, 9000.0], [3000.0, 10000.0, 15000.0])
    assert row.change > 0.3 and row.p_value > 0.05 and row.verdict == OK


def test_faster_beyond_tolerance_is_stale_not_a_failure():
    base = [1000.0 + i for i in range(10)]
    row = compare("t", base, [v * 1.2 for v in base])
    assert row.verdict == STALE and not row.failed


def test_tolerance_and_alpha_are_honoured():
    base = [1000.0 + i for i in range(10)]
    cur = [v * 0.9 for v in base]
    assert compare("t", base, cur, tolerance=0.12).verdict == OK
    assert compare("t", base, cur, tolerance=0.05).verdict == REGRESSED
    assert compare("t", base, cur, alpha=1e-9).verdict == INCONCLUSIVE


def test_empty_samples_are_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        compare("t", [], [1.0])


def test_missing_row_line():
    assert Comparison("t[x]", MISSING).line() == f"{MISSING}: t[x] (against baseline)"


@pytest.mark.parametrize(("drop", "low", "high"), [(0.0, 0.0, 0.01), (0.10, 0.99, 1.0)])
def test_error_rates_on_realistic_noise(drop, low, high):
    """4% window-to-window CV (a launch-bound GPU run), 10 rounds a side, default settings: at most 1% false
    alarms in 1,000 clean comparisons, at least 99% of 1,000 comparisons with a real 10% drop caught."""
    rate = detection_rate(drop=drop, cv=0.04, rounds=10, trials=1000, seed=1)
    assert low <= rate <= high


def test_verdict_rates_cover_every_outcome_and_few_rounds_leave_drops_undecided():
    from trainperf.verdict import verdict_rates

    rates = verdict_rates(drop=0.07, cv=0.04, rounds=3, trials=300, seed=2)
    assert sum(rates.values()) == pytest.approx(1.0)
    # 3 rounds a side often cannot confirm a real 7% drop: it is inconclusive (never "ok" when beyond tolerance)
    assert rates[INCONCLUSIVE] > 0.05 and rates[REGRESSED] > 0.3
    assert verdict_rates(drop=0.07, cv=0.04, rounds=10, trials=300, seed=2)[INCONCLUSIVE] < 0.02


def test_too_few_rounds_are_recognised():
    from trainperf.verdict import decidable, smallest_p

    assert smallest_p(3, 3) == pytest.approx(0.05) and decidable(3, 3)
    assert not decidable(2, 2) and not decidable(1, 10) and decidable(2, 10)
    assert not decidable(3, 3, alpha=0.01)
