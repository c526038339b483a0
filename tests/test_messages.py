"""Bad input, said one way: every option, file or marker trainperf refuses ends the run before any benchmark with
one ``ERROR: trainperf: <where>: <problem>; expected <what> (exit status 4)`` line and exit status 4."""

from __future__ import annotations

import json
import re

import pytest

from trainperf.machine.environment import environment_info
from trainperf.machine.key import machine_key

SELECT = ("-m", "cpu and train_step")
ONE_STYLE = re.compile(r"^ERROR: trainperf: (?P<where>.+?): (?P<problem>.+); expected (?P<what>.+) \(exit status 4\)$")


def _baseline(text):
    def make(suite):
        directory = suite.pytester.path / "baselines"
        directory.mkdir()
        (directory / f"{machine_key(environment_info())}.json").write_text(text)
        return ()

    return make


def _compared(text):
    def make(suite):
        path = suite.pytester.path / "run.json"
        path.write_text(text)
        return (f"--benchmark-compare={path}",)

    return make


def _cifar_of_junk(suite):
    batches = suite.pytester.path / "junk" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "batches.meta", "test_batch"):
        (batches / name).write_bytes(b"not a pickle")
    return (f"--trainperf-data-dir={batches.parent}",)


def _tolerance_marker(suite):
    suite.pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.train_step
        @pytest.mark.trainperf_tolerance("a lot")
        def test_marked(trainperf_runner, trainperf_trainer):
            trainperf_runner.train_step(trainperf_trainer)
        """
    )
    return ()


def _ini(suite):
    suite.pytester.makeini("[pytest]\ntrainperf_window_s = -1\n")
    return ()


FOREIGN_RUN = json.dumps({"benchmarks": [], "machine_info": {}})
# What makes the input bad (writes a file, returns arguments), and what the message must name (* for any text).
BAD_INPUTS = {
    "bad option value": (lambda s: ("--trainperf-rounds=0",), "--trainperf-rounds"),
    "bad ini value": (_ini, "ini option trainperf_window_s"),
    "truncated baseline": (_baseline('{"schema": "trainperf-baseline", "bench'), "*/baselines/*.json"),
    "wrong-shape baseline": (_baseline("[1, 2]"), "*/baselines/*.json"),
    "missing data dir": (lambda s: (f"--trainperf-data-dir={s.pytester.path / 'absent'}",), "--trainperf-data-dir"),
    "garbage data dir": (_cifar_of_junk, "--trainperf-data-dir"),
    "bad tolerance marker": (_tolerance_marker, "trainperf_tolerance marker on test_marked.py::test_marked*"),
    "truncated --benchmark-compare file": (_compared("{trunc"), "--benchmark-compare */run.json"),
    "foreign --benchmark-compare file": (_compared(FOREIGN_RUN), "--benchmark-compare */run.json"),
    "unmatched --benchmark-compare": (lambda s: ("--benchmark-compare=0042",), "--benchmark-compare 0042"),
}


# pytest-benchmark's own notices about the unreadable runs are expected here.
@pytest.mark.filterwarnings("ignore::pytest_benchmark.logger.PytestBenchmarkWarning")
@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_every_bad_input_ends_the_run_in_one_style(perf_suite, case):
    make, where = case
    result = perf_suite.run(*SELECT, *make(perf_suite))
    out, err = result.stdout.str(), result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out + err
    said = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert len(said) == 1, err
    match = ONE_STYLE.match(said[0])
    assert match, said[0]
    assert re.fullmatch(re.escape(where).replace(r"\*", ".*"), match["where"]), said[0]
    assert "_pytest.outcomes.Exit" not in out + err and "Traceback" not in out + err
    assert not re.search(r"\d+ (passed|failed)", out)  # refused before any benchmark ran


def test_two_case_fixtures_in_one_test_are_refused_in_the_same_style(perf_suite):
    perf_suite.pytester.makepyfile(
        test_both="""
        def test_both(trainperf_case, trainperf_loader_case):
            pass
        """
    )
    result = perf_suite.run("test_both.py", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: trainperf: test_both.py::test_both: asks for trainperf_case, trainperf_loader_case; "
            "expected one trainperf case fixture per test (exit status 4)"
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_core_message_keeps_its_file_problem_and_expectation():
    from trainperf.pytest_edge import errors

    with pytest.raises(pytest.UsageError) as refused:
        errors.refuse("/b/k.json: not valid JSON (at line 1); expected a whole JSON baseline file", "unused")
    assert str(refused.value) == (
        "trainperf: /b/k.json: not valid JSON (at line 1); expected a whole JSON baseline file (exit status 4)"
    )
    with pytest.raises(pytest.UsageError, match=r"^trainperf: /b: baseline directory does not exist; expected x \("):
        errors.refuse("/b: baseline directory does not exist", "x")
