"""Baseline files as git and CI users see them: written with an ordinary file's mode, and left alone (with a
"baseline not updated" in the summary) when a recording is interrupted."""

from __future__ import annotations

import os
import stat

import pytest

from conftest import TINY_OPTIONS
from trainperf.gate import baseline as bl
from trainperf.machine.environment import environment_info
from trainperf.machine.key import machine_key

STEP = "test_train_step[cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach]"
RECORD = ("-m", "cpu and train_step", "--trainperf-update-baselines", "--trainperf-record-min-runs=2")


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize(
    ("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)], ids=["umask-022", "umask-002", "umask-077"]
)
def test_a_written_baseline_has_the_mode_of_a_new_file(tmp_path, umask, mask, mode):
    path = tmp_path / "k.json"
    umask(mask)
    bl.write_atomic(path, bl.Baseline("k", {}))
    assert stat.S_IMODE(path.stat().st_mode) == mode
    path.chmod(0o600)  # replacing a file does not keep the old file's mode: a rewrite is a new file
    bl.write_atomic(path, bl.Baseline("k", {}))
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def _ctrl_c_in_a_benchmark(suite, monkeypatch):
    suite.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(autouse=True)
        def ctrl_c():
            raise KeyboardInterrupt
        """
    )


def _ctrl_c_in_the_fresh_process(suite, monkeypatch):
    from trainperf.gate import finish

    def ctrl_c(self, nodeids, timeout_s):
        raise KeyboardInterrupt

    monkeypatch.setattr(finish.ChildContext, "measure", ctrl_c)  # the second run of the recording


@pytest.mark.parametrize(
    ("interrupt", "why"),
    [
        (_ctrl_c_in_a_benchmark, "the run was interrupted"),
        (_ctrl_c_in_the_fresh_process, "interrupted (Ctrl-C) while recording"),
    ],
    ids=["during-the-run", "while-recording"],
)
def test_an_interrupted_update_says_baseline_not_updated_and_keeps_the_file(perf_suite, monkeypatch, interrupt, why):
    key = machine_key(environment_info())
    baselines = perf_suite.pytester.path / "baselines"
    baselines.mkdir()
    path = baselines / f"{key}.json"
    bl.write_atomic(path, bl.Baseline(key, {STEP: bl.Entry(1000.0, (990.0, 1010.0))}))
    before = path.read_bytes()
    interrupt(perf_suite, monkeypatch)
    try:
        # no_reraise_ctrlc: pytester would pass a Ctrl-C that pytest itself caught on to this session.
        result = perf_suite.pytester.runpytest(*TINY_OPTIONS, *RECORD, no_reraise_ctrlc=True)
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C escaped the pytest run: a traceback instead of 'baseline not updated'")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, out + result.stderr.str()
    result.stdout.fnmatch_lines(["*= trainperf: baseline not updated =*", f"{path}: baseline not updated: {why}"])
    assert path.read_bytes() == before
    assert [p.name for p in baselines.iterdir()] == [path.name]
