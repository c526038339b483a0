"""The regression gate end to end: pytester runs of the real perf/ suite with a tiny model on CPU."""

from __future__ import annotations

import json

import pytest

from trainperf.machine.environment import environment_info
from trainperf.machine.key import machine_key

STEP = "test_train_step[cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach]"
# Ten windows of 30 steps: enough rounds for the test, short enough for a unit-test budget.
GATE = ("-m", "cpu and train_step", "--trainperf-rounds=10", "--trainperf-steps=30", "--trainperf-warmup-steps=5")
# A recording measures one extra fresh process here (two runs), not the default three to five.
RECORD = ("--trainperf-update-baselines", "--trainperf-record-min-runs=2", "--trainperf-record-max-runs=2")
# For tests about something other than the verdict: a 1 ms step moves up to ~12% between in-process pytester
# runs on a quiet machine (42k then 37k img/s seen here), more than the default 5%, and by 1.6x when two other
# busy processes share the 2 cores. The default is exercised on realistic noise by the simulation in
# test_verdict.py, and by the inflated-baseline test here.
LOOSE = "--trainperf-tolerance=60%"


def _glob(text: str) -> str:
    """``text`` as an fnmatch pattern that matches it literally (test ids hold brackets)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in text)


G_STEP = _glob(STEP)


@pytest.fixture
def key():
    return machine_key(environment_info())


# Two OpenMP threads on a 2-vCPU machine make a 1 ms step bimodal from run to run (23k or 31k img/s, seen
# here); one thread keeps back-to-back runs within a few percent, which is what a gate test needs.
ONE_THREAD = """
import pytest
import torch

@pytest.fixture(scope="session", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
"""


@pytest.fixture
def gated(perf_suite):
    (perf_suite.pytester.path / "baselines").mkdir()
    perf_suite.pytester.makeconftest(ONE_THREAD)
    return perf_suite


def _record(suite, *args):
    result = suite.run(*GATE, *RECORD, *args)
    assert result.ret == 0, result.stdout.str()
    return result


def _baseline(suite, key):
    return suite.pytester.path / "baselines" / f"{key}.json"


def _scale(entry, factor):
    """Every number of a baseline entry times ``factor``: its runs, its median and its rounds."""
    entry["runs"] = [r * factor for r in entry["runs"]]
    entry["samples"] = [s * factor for s in entry["samples"]]
    entry["img_per_s"] *= factor


def _recorded(suite, key, edit):
    """Record a baseline, then change its JSON document with ``edit(doc, step_entry)``."""
    _record(suite)
    path = _baseline(suite, key)
    doc = json.loads(path.read_text())
    edit(doc, doc["benchmarks"][STEP])
    path.write_text(json.dumps(doc))
    return path


def test_record_then_clean_rerun_passes(gated, key):
    result = _record(gated)
    result.stdout.fnmatch_lines([f"*trainperf gate: machine key {key}*", f"wrote *{key}.json: added 1, updated 0*"])
    doc = json.loads(_baseline(gated, key).read_text())
    entry = doc["benchmarks"][STEP]
    assert doc["schema"] == "trainperf-baseline" and doc["machine_key"] == key
    assert doc["schema_version"] == 2 and len(entry["samples"]) == 10 and entry["img_per_s"] > 0
    assert len(entry["runs"]) == 2 and entry["provenance"]["runs_recorded"] == 2  # the first and a fresh process
    assert entry["provenance"]["machine"]["torch"] and entry["provenance"]["date"]
    rerun = gated.run(*GATE, LOOSE)
    assert rerun.ret == 0, rerun.stdout.str()
    rerun.stdout.fnmatch_lines(["*trainperf gate: passed*"])
    assert STEP in rerun.stdout.str() and "REGRESSED" not in rerun.stdout.str()


def test_inflated_baseline_fails_after_a_confirming_fresh_run(gated, key, tmp_path):
    # five times the recorded numbers: an 80% drop that no machine noise fakes, seen again by the fresh process
    _recorded(gated, key, lambda doc, entry: _scale(entry, 5.0))
    verdicts = tmp_path / "verdict.json"
    result = gated.run(*GATE, f"--trainperf-verdict-json={verdicts}")  # default tolerance, 5%
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*look regressed; measuring them again in a fresh process*",
            "*trainperf gate FAILED*",
            f"REGRESSED: {G_STEP}: baseline {key}.json * img/s, current * img/s, change -*%, threshold -*% "
            "(tolerance 5.0%, noise *% from 2 runs), detectable -*%; first run -*%, confirmation in a fresh "
            "process -*%*",
        ]
    )
    result.assert_outcomes(passed=1)  # the benchmark itself ran fine: the run fails on the gate
    assert "Traceback" not in result.stdout.str()
    doc = json.loads(verdicts.read_text())
    (row,) = doc["comparisons"]
    assert doc["exit_code"] == 1 and row["verdict"] == "REGRESSED" and row["confirmation"] < -0.5


def test_confirmation_off_fails_on_the_first_run(gated, key):
    _recorded(gated, key, lambda doc, entry: _scale(entry, 5.0))
    result = gated.run(*GATE, "--trainperf-confirm=off")
    assert result.ret == 1
    assert "measuring them again" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"REGRESSED: {G_STEP}: baseline *"])


def test_a_regression_the_fresh_run_does_not_see_is_not_a_failure(gated, key):
    # the first run is slowed by a conftest that the fresh process skips (it sees TRAINPERF_FRESH_RUN)
    _record(gated)
    gated.pytester.makeconftest(
        ONE_THREAD
        + """
import os
import time

from trainperf.measurement import training


@pytest.fixture(autouse=True)
def slow_first_run(monkeypatch):
    if os.environ.get("TRAINPERF_FRESH_RUN"):
        return
    step = training.Trainer.step

    def slow_step(self, x, y):
        time.sleep(0.02)
        return step(self, x, y)

    monkeypatch.setattr(training.Trainer, "step", slow_step)
"""
    )
    result = gated.run(*GATE, LOOSE)  # a 95% drop in the first run, none in the fresh one
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [f"not confirmed — a fresh run agrees with the baseline: {G_STEP}: *first run -*%, confirmation *"]
    )


def test_faster_than_baseline_is_reported_stale_not_failed(gated, key):
    # a tenth of the recorded numbers: far outside any noise of this machine
    _recorded(gated, key, lambda doc, entry: _scale(entry, 0.1))
    result = gated.run(*GATE)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*improved — baseline stale*"])


def _fifth(doc, entry):
    """The baseline 5x faster: current is 80% slower, a drop no machine noise fakes or hides."""
    _scale(entry, 5.0)


def test_baseline_entry_tolerance_and_command_line_override(gated, key):
    def slower_but_tolerated(doc, entry):
        _fifth(doc, entry)
        entry["tolerance"] = 0.9

    _recorded(gated, key, slower_but_tolerated)
    result = gated.run(*GATE)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["#1 *-90.0%*ok", f"#1  {G_STEP}: ok"])
    assert gated.run(*GATE, "--trainperf-tolerance=10%").ret == 1


def test_tolerance_marker_beats_the_baseline_file(gated, key):
    _recorded(gated, key, lambda doc, entry: (_fifth(doc, entry), doc.update(default_tolerance=0.9)))
    assert gated.run(*GATE).ret == 0  # the file's default (90%) tolerates the 80% drop
    gated.pytester.makeconftest(
        ONE_THREAD
        + """
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.trainperf_tolerance("10%"))
"""
    )
    result = gated.run(*GATE)
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"REGRESSED: {G_STEP}: *(tolerance 10.0%*"])


def test_missing_benchmark_is_listed_and_strict_fails(gated, key):
    gone = "test_train_step[cpu-eager-bf16-channels_last-tinymodel.tiny-b32-fused]"
    _recorded(gated, key, lambda doc, entry: doc["benchmarks"].update({gone: entry}))
    result = gated.run(*GATE, LOOSE)
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*{_glob(gone)}*missing — in baseline but not run*"])
    strict = gated.run(*GATE, LOOSE, "--trainperf-strict")
    assert strict.ret == 1
    strict.stdout.fnmatch_lines([f"strict: missing — in baseline but not run: {_glob(gone)}*"])


def test_no_baseline_is_new_and_strict_fails(gated, key):
    result = gated.run(*GATE)
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*no baseline for this machine ({key}.json)*", f"*{G_STEP}*new — no baseline*"])
    strict = gated.run(*GATE, "--trainperf-strict")
    assert strict.ret == 1
    strict.stdout.fnmatch_lines(["strict: no baseline for this machine*--trainperf-update-baselines"])


def test_update_merges_and_keeps_entries_that_did_not_run(gated, key):
    other = "test_epoch[cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach]"

    def add_other(doc, entry):
        doc["benchmarks"][other] = dict(entry, tolerance=0.2)
        entry["tolerance"] = 0.15

    path = _recorded(gated, key, add_other)
    result = _record(gated)
    result.stdout.fnmatch_lines(["wrote *: added 0, updated 1, kept 1 not run", f"  ~ {G_STEP}: * -> * img/s (*)"])
    new = json.loads(path.read_text())
    assert set(new["benchmarks"]) == {STEP, other}
    assert new["benchmarks"][other]["tolerance"] == 0.2 and new["benchmarks"][STEP]["tolerance"] == 0.15
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed, not left behind


def test_update_records_noisy_runs_and_refuses_failed_ones(gated, key):
    # a round-to-round spread that the old rule refused is recorded now, with the noise it measured
    result = _record(gated)
    assert "baseline not updated" not in result.stdout.str()
    gated.pytester.makeconftest(
        ONE_THREAD
        + """
import pytest

@pytest.fixture(autouse=True)
def broken():
    raise RuntimeError("a broken case")
"""
    )
    path = _baseline(gated, key)
    before = path.read_bytes()
    refused = gated.run(*GATE, *RECORD)
    assert refused.ret == 6
    refused.stdout.fnmatch_lines(["*trainperf: baseline not updated*", "*baseline not updated: 1 case(s) failed*"])
    assert "trainperf gate FAILED" not in refused.stdout.str()
    assert path.read_bytes() == before


def test_update_that_never_settles_within_its_budget_is_refused(gated, key):
    refused = gated.run(*GATE, *RECORD, "--trainperf-record-budget-s=0.001")
    assert refused.ret == 6
    refused.stdout.fnmatch_lines(["*baseline not updated: never settled: only 1 of 2 runs fit in the*budget*"])
    assert not _baseline(gated, key).exists()


def test_update_into_a_missing_directory_is_an_error(perf_suite):
    result = perf_suite.run(*GATE, "--trainperf-update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*trainperf: *baselines: baseline directory does not exist*"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{truncated", "not valid JSON*"),
        (
            '{"schema": "trainperf-baseline", "schema_version": 99, "machine_key": "K", "benchmarks": {}}',
            "schema_version 99 is newer than this trainperf understands*",
        ),
        ('{"schema": "other"}', "not a trainperf baseline*"),
        (
            '{"schema": "trainperf-baseline", "schema_version": 1, "machine_key": "K", "benchmarks": '
            '{"test_dataloader[cpu-w0-nopin]": {"img_per_s": -5, "samples": [1]}}}',
            "*img_per_s must be a positive number*",
        ),
        (
            '{"schema": "trainperf-baseline", "schema_version": 1, "machine_key": "K", "benchmarks": '
            '{"test_dataloader[cpu-w0-nopin]": {"img_per_s": 5, "samples": [0, 1]}}}',
            "*samples must be a non-empty list*",
        ),
    ],
)
def test_bad_baseline_file_is_a_clear_error(gated, key, content, message):
    content = content.replace('"K"', json.dumps(key))
    _baseline(gated, key).write_text(content)
    result = gated.run(*GATE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*trainperf: *{key}.json: {message}"])
    assert "Traceback" not in result.stdout.str()
    result.assert_outcomes()  # refused before any benchmark ran


def test_unknown_benchmark_id_is_an_error(gated, key):
    _recorded(gated, key, lambda doc, entry: doc["benchmarks"].update({"test_train_step[cpu-eagr-x]": entry}))
    result = gated.run(*GATE, LOOSE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'test_train_step[[]cpu-eagr-x[]]' is not a trainperf benchmark id*"])
    result.assert_outcomes()  # refused before any benchmark ran


def test_a_schema_1_baseline_is_a_reference_of_one_run(gated, key):
    def version_1(doc, entry):
        doc["schema_version"] = 1
        del entry["runs"]

    _recorded(gated, key, version_1)
    result = gated.run(*GATE, LOOSE)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["#1 * 1/1 *", f"#1  {G_STEP}: *"])


def test_strict_first_recording_passes_and_partial_runs_are_not_judged(gated, key):
    first = gated.run(*GATE, "--trainperf-strict", *RECORD)
    assert first.ret == 0, first.stdout.str()
    assert gated.run("--collect-only", "--trainperf-strict").ret == 0
    disabled = gated.run(*GATE, "--benchmark-disable", "--trainperf-update-baselines")
    assert disabled.ret == pytest.ExitCode.USAGE_ERROR
    disabled.stderr.fnmatch_lines(["*--trainperf-update-baselines: needs timed benchmarks; they are disabled here*"])


def test_update_never_writes_from_a_run_with_gate_errors(gated, key):
    path = _recorded(gated, key, lambda doc, entry: entry.update(runs=[-1]))
    before = path.read_bytes()
    result = gated.run(*GATE, *RECORD)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*runs must be a list of positive img/s values*"])
    assert path.read_bytes() == before
    explicit = gated.run(*GATE, f"--trainperf-baseline={path}", "--trainperf-update-baselines")
    assert explicit.ret == pytest.ExitCode.USAGE_ERROR
    explicit.stderr.fnmatch_lines(["*cannot be combined with --trainperf-baseline*"])


def test_explicit_baseline_of_another_machine_is_refused(gated, key, tmp_path):
    _record(gated)
    other = tmp_path / "other.json"
    doc = json.loads(_baseline(gated, key).read_text())
    doc["machine_key"] = "cuda-nvidia-h200-torch2.11-cuda12.8"
    other.write_text(json.dumps(doc))
    result = gated.run(*GATE, f"--trainperf-baseline={other}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*recorded on machine key 'cuda-nvidia-h200-torch2.11-cuda12.8', this machine is '{key}'*"]
    )
    allowed = gated.run(*GATE, f"--trainperf-baseline={other}", "--trainperf-allow-mismatch", LOOSE)
    assert allowed.ret == 0, allowed.stdout.str()


def test_benchmark_compare_gates_against_the_previous_run(gated):
    # pytest-benchmark's compare needs its storage below the working directory
    where = gated.pytester.path / "storage"
    storage = f"--benchmark-storage=file://{where}"
    first = gated.run(*GATE, "--benchmark-autosave", storage)
    assert first.ret == 0
    saved = next(where.rglob("0001_*.json"))
    doc = json.loads(saved.read_text())
    extra = doc["benchmarks"][0]["extra_info"]
    extra["img_per_s_rounds"] = [s * 10 for s in extra["img_per_s_rounds"]]
    extra["img_per_s"] *= 10
    saved.write_text(json.dumps(doc))
    result = gated.run(
        *GATE, "--benchmark-compare=0001", storage, "--trainperf-tolerance=20%", "--trainperf-confirm=off"
    )
    assert "machine_info is different" not in result.stdout.str()
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"REGRESSED: {G_STEP}: previous run --benchmark-compare run of *"])
