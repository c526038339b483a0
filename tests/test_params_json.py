"""Saved runs and --benchmark-compare: case parameters are plain JSON that pytest-benchmark's own compare command
reads, and comparing with a saved run prints each table and each benchmark's verdict once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

STEP = "test_train_step[cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach]"
STEP_ID = "cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach"
SELECT = ("-m", "cpu and train_step")
LOOSE = "--trainperf-tolerance=60%"  # about what is printed, not the verdict (tests/test_gate.py says why)


@pytest.fixture
def saved_run(perf_suite):
    path = perf_suite.pytester.path / "run.json"
    result = perf_suite.run(*SELECT, f"--benchmark-json={path}")
    assert result.ret == 0, result.stdout.str()
    return path


def test_case_parameters_are_saved_as_their_ids(saved_run):
    text = saved_run.read_text()
    assert "UNSERIALIZABLE" not in text
    (bench,) = json.loads(text)["benchmarks"]
    assert bench["name"] == STEP and bench["params"] == {"trainperf_case": STEP_ID} and bench["param"] == STEP_ID


def test_pytest_benchmark_compare_reads_and_groups_a_saved_run(saved_run):
    done = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", "--group-by=param:trainperf_case", str(saved_run)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"trainperf_case={STEP_ID}" in done.stdout and "UNSERIALIZABLE" not in done.stdout + done.stderr


def test_comparing_with_a_saved_run_prints_each_table_and_verdict_once(perf_suite, saved_run):
    # No committed baseline: the compared run lists every benchmark; "no baseline" is the gate heading's to say.
    (perf_suite.pytester.path / "baselines").mkdir()
    result = perf_suite.run(*SELECT, f"--benchmark-compare={saved_run}", LOOSE)
    out = result.stdout.str()
    assert result.ret == 0, out
    assert out.count("trainperf results (") == 1 and out.count("- trainperf gate: machine key") == 1
    gate = out[out.index("- trainperf gate: machine key") : out.index("trainperf gate: passed")]
    assert STEP in gate and "new — no baseline" not in gate, gate  # against the compared run only
    assert out.count("no baseline for this machine") == 1, gate
