"""Progress lines for long cases: when they are due, what they say, and that they reach the terminal."""

from __future__ import annotations

import pytest

from trainperf.pytest_edge.progress import Progress, line

TINY_ID = "cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach"
# Every case counts as long: the suite's tiny cases take well under the real threshold.
EVERY_CASE_IS_LONG = """
import trainperf.pytest_edge.progress as progress

progress.PROGRESS_AFTER_S = 0.0
progress.PROGRESS_EVERY_S = 0.0
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _progress(clock: Clock, **limits: float) -> tuple[Progress, list[str]]:
    lines: list[str] = []
    return Progress("epoch[x]", lines.append, clock=clock, **limits), lines


def test_a_short_case_prints_nothing():
    clock = Clock()
    progress, lines = _progress(clock, after_s=5.0, every_s=0.0)
    for done in range(4):
        clock.now += 0.5  # 2 s in all: warm-up and three rounds
        progress(done, 3, 1000.0)
    assert lines == []


def test_a_case_estimated_to_be_long_reports_from_its_first_round():
    clock = Clock()
    progress, lines = _progress(clock, after_s=5.0, every_s=0.0)
    clock.now += 1.0
    progress(0, 5, 900.0)  # 1 s of warm-up: 5 rounds like it would take 6 s in all
    clock.now += 1.0
    progress(1, 5, 1234.5)
    assert lines == [
        "  epoch[x]: warm-up done, 5 timed rounds next, 900 img/s",
        "  epoch[x]: round 1/5, 1,234 img/s",
    ]


def test_a_case_reports_once_it_has_run_past_the_limit():
    clock = Clock()
    progress, lines = _progress(clock, after_s=5.0, every_s=0.0)
    clock.now += 6.0  # a long warm-up; its estimate alone is not needed
    progress(0, 1, 10.0)
    assert lines == ["  epoch[x]: warm-up done, 1 timed round next, 10 img/s"]


def test_lines_are_spaced_but_the_last_round_is_always_reported():
    clock = Clock()
    progress, lines = _progress(clock, after_s=0.0, every_s=2.0)
    for done in range(1, 7):
        clock.now += 0.5
        progress(done, 6, 100.0)
    # a line at 0.5 s, none until 2 s later (2.5 s), then the last round at 3 s
    assert [text.split(": ")[1].split(",")[0] for text in lines] == ["round 1/6", "round 5/6", "round 6/6"]


def test_line_reads_well_in_a_log():
    assert line("train_step[a]", 3, 10, 12345.6) == "  train_step[a]: round 3/10, 12,346 img/s"
    assert "\r" not in line("a", 0, 1, 1.0)


def test_long_cases_show_progress_on_the_terminal(perf_suite):
    perf_suite.pytester.makeconftest(EVERY_CASE_IS_LONG)
    # A separate process: pytest captures the test's file descriptor 1 there as on a real terminal or CI log.
    result = perf_suite.pytester.runpytest_subprocess(
        *_tiny(), "-m", "cpu and (epoch or train_step)", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"  train_step[[]{TINY_ID}[]]: warm-up done, 3 timed rounds next, * img/s",
            f"  train_step[[]{TINY_ID}[]]: round 1/3, * img/s",
            f"  train_step[[]{TINY_ID}[]]: round 3/3, * img/s",
            f"  epoch[[]{TINY_ID}[]]: warm-up done, 2 timed rounds next, * img/s",
            f"  epoch[[]{TINY_ID}[]]: round 1/2, * img/s",
            f"  epoch[[]{TINY_ID}[]]: round 2/2, * img/s",
        ]
    )
    assert "\r" not in result.stdout.str()


def test_quiet_runs_show_no_progress(perf_suite):
    perf_suite.pytester.makeconftest(EVERY_CASE_IS_LONG)
    result = perf_suite.run("-q", "-m", "cpu and (epoch or train_step)")
    result.assert_outcomes(passed=2)
    assert "round 1/" not in result.stdout.str() and "warm-up done" not in result.stdout.str()


def _tiny() -> tuple[str, ...]:
    from conftest import TINY_OPTIONS

    return TINY_OPTIONS


@pytest.fixture(autouse=True)
def _restore_limits(monkeypatch):
    """The suite's conftest sets the module's limits in this process too (in-process runs)."""
    import trainperf.pytest_edge.progress as progress

    monkeypatch.setattr(progress, "PROGRESS_AFTER_S", progress.PROGRESS_AFTER_S)
    monkeypatch.setattr(progress, "PROGRESS_EVERY_S", progress.PROGRESS_EVERY_S)
