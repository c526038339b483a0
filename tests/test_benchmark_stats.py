"""pytest-benchmark's own statistics are per training step (per batch of an epoch, per image of a loader), so its
mean, ops, --benchmark-compare-fail and every tool that reads its JSON see a slower step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

TINY_ID = "cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach"
STEP = f"test_train_step[{TINY_ID}]"
SCRIPTS = Path(__file__).parent.parent / "scripts"
# Windows calibrated to a fixed length, as in a real run: a slower step means fewer steps per window, so
# seconds per round stay put and only per-step statistics move.
CALIBRATED = ("-m", "cpu and train_step", "--trainperf-steps=auto", "--trainperf-window-s=0.15", "--trainperf-rounds=5")


def _benchmarks(path: Path) -> dict[str, dict]:
    return {b["name"]: b for b in json.loads(path.read_text(encoding="utf-8"))["benchmarks"]}


def test_stats_are_seconds_per_step_per_batch_and_per_image(perf_suite, tmp_path):
    out = tmp_path / "run.json"
    result = perf_suite.run(
        "-m", "cpu and not compile", "--trainperf-steps=20", "--trainperf-loader-rounds=3", f"--benchmark-json={out}"
    )
    result.assert_outcomes(passed=4)
    benches = _benchmarks(out)

    # Each pytest-benchmark round holds the round trainperf timed and next to nothing else (a telemetry mark, the
    # calls that return at once), divided into its units: compared round by round, as the rounds' spread on a
    # shared machine is far wider than that difference.
    step = benches[STEP]
    assert step["stats"]["iterations"] == step["extra_info"]["steps_per_round"] == 20
    _each_round_is(step, [32 / rate for rate in step["extra_info"]["img_per_s_rounds"]], units=20)  # s per step

    epoch = benches[f"test_epoch[{TINY_ID}]"]
    assert epoch["stats"]["iterations"] == 128 // 32
    _each_round_is(epoch, [s / 4 for s in epoch["extra_info"]["epoch_s_rounds"]], units=4)  # s per batch

    loader = benches["test_dataloader[cpu-w0-nopin]"]
    assert loader["stats"]["iterations"] == loader["extra_info"]["images_per_round"] == 64
    _each_round_is(loader, [1 / rate for rate in loader["extra_info"]["img_per_s_rounds"]], units=64)  # s per image


def _each_round_is(bench: dict, per_unit_s: list[float], units: int) -> None:
    for measured, timed in zip(bench["stats"]["data"], per_unit_s, strict=True):
        assert timed * (1 - 1e-4) <= measured <= timed * 1.5 + 0.005 / units, (bench["name"], measured, timed)


ONE_THREAD = """
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # Two threads on two shared cores: a neighbour's load slows every step many times over; one thread, at most
    # about twice.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
"""


def test_benchmark_compare_fail_catches_a_slower_step(perf_suite, tmp_path, monkeypatch):
    perf_suite.pytester.makeconftest(ONE_THREAD)
    storage = f"--benchmark-storage=file://{tmp_path / 'storage'}"
    # pytest-benchmark's verdict alone: trainperf's own gate (which also reads the compared run) never fails here
    quiet_gate = ("--trainperf-tolerance=0.99", "--trainperf-confirm=off", "--trainperf-busy-limit=off")
    compare = (storage, "--benchmark-compare=0001", "--benchmark-compare-fail=mean:150%", *quiet_gate)
    perf_suite.run(*CALIBRATED, "--benchmark-autosave", storage).assert_outcomes(passed=1)

    same = perf_suite.run(*CALIBRATED, *compare)
    assert same.ret == pytest.ExitCode.OK, same.stdout.str()
    assert "Performance has regressed" not in same.stdout.str() + same.stderr.str()

    # every step 6x as long (busy time after each Trainer.step: +500%), from outside trainperf's code
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setenv("TRAINPERF_SLOWDOWN", "5.0")
    slowed = perf_suite.run(*CALIBRATED, *compare, "-p", "slowdown_plugin")
    assert slowed.ret != pytest.ExitCode.OK
    slowed.stderr.fnmatch_lines(["*Performance has regressed*", f"*{STEP}*Field 'mean' has failed*"])


def test_a_round_of_no_op_calls_costs_under_a_microsecond_each(pytester):
    """The calls after a round's first return at once: pytest-benchmark's per-step mean carries their cost."""
    pytester.makepyfile(
        """
        from trainperf.measurement.measure import unit_rounds

        def test_no_work(benchmark):
            rounds = []
            unit_rounds(benchmark, lambda: rounds.append(1), rounds=3, units=100_000)
            assert len(rounds) == 3
            print("FASTEST", benchmark.stats.stats.min)
        """
    )
    result = pytester.runpytest("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    [fastest] = [float(match) for match in re.findall(r"FASTEST (\S+)", result.stdout.str())]
    assert 0 < fastest < 1e-6  # per call, in its fastest round; ~0.1 us on an idle core


def test_distributed_windows_are_replayed_per_step(pytester):
    """The ranks' windows reach pytest-benchmark as rounds of ``steps_per_round`` iterations, like a local case."""
    pytester.makepyfile(
        """
        from trainperf.pytest_edge.runner import replay_rounds

        def test_replay(benchmark):
            replay_rounds(benchmark, [0.01, 0.03, 0.02], 10)
        """
    )
    out = pytester.path / "run.json"
    pytester.runpytest("-p", "no:cacheprovider", f"--benchmark-json={out}").assert_outcomes(passed=1)
    [stats] = [b["stats"] for b in json.loads(out.read_text(encoding="utf-8"))["benchmarks"]]
    assert stats["iterations"] == 10
    for per_step, window in zip(stats["data"], [0.01, 0.03, 0.02], strict=True):
        assert window / 10 <= per_step <= window / 10 + 0.005
