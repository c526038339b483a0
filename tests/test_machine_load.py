"""machine_load: CPU shares from /proc readings (a fake /proc with plain numbers), and the real one on Linux."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from trainperf.machine import load as ml
from trainperf.machine.load import CpuTimes, MachineLoad


def _proc(root: Path, machine: list[int], processes: dict[int, tuple[str, int, int]]) -> Path:
    """A /proc with a /proc/stat line and pid/stat files: pid -> (name, parent pid, ticks as utime)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text("cpu  " + " ".join(map(str, machine)) + "\ncpu0 1 2 3\n")
    (root / "self").mkdir(exist_ok=True)  # not a pid: ignored
    for pid, (name, ppid, ticks) in processes.items():
        (root / str(pid)).mkdir(exist_ok=True)
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
        (root / str(pid) / "stat").write_text(f"{pid} ({name}) S {ppid} 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0\n")
    return root


def test_other_processes_and_steal_are_shares_of_the_whole_machine(tmp_path):
    # user nice system idle iowait irq softirq steal
    before = _proc(tmp_path / "a", [100, 0, 0, 1000, 0, 0, 0, 0], {10: ("py", 1, 50), 11: ("w (x) 1", 10, 10)})
    after = _proc(tmp_path / "b", [400, 0, 100, 1200, 0, 0, 0, 200], {10: ("py", 1, 250), 11: ("w (x) 1", 10, 60)})
    a, b = ml.read(before, pid=10), ml.read(after, pid=10)
    assert a is not None and b is not None
    assert (a.ours, b.ours) == (60, 310)  # the process and its child, a name with spaces and parentheses
    load = ml.between(a, b)
    assert load is not None
    # 800 ticks in all: 400 busy, 250 of them ours, 200 stolen
    assert load.others == pytest.approx(150 / 800) and load.steal == pytest.approx(200 / 800)
    assert load.busy == pytest.approx(350 / 800)
    assert "18.8% of the machine's CPU went to other processes and 25.0% to other guests" in load.describe()


def test_an_ended_child_counts_as_ours_through_its_parent(tmp_path):
    a = CpuTimes(total=1000, busy=100, steal=0, ours=100, at=0.0)
    b = CpuTimes(total=2000, busy=1000, steal=0, ours=990, at=5.0)  # the child's 890 ticks reaped into cutime
    load = ml.between(a, b)
    assert load is not None and load.others == pytest.approx(10 / 1000) and load.seconds == 5.0


def test_no_reading_no_load(tmp_path):
    assert ml.read(tmp_path / "missing") is None
    same = CpuTimes(1, 1, 0, 1, 0.0)
    assert ml.between(None, same) is None and ml.between(same, same) is None


def test_a_recorded_load_round_trips_and_garbage_is_none():
    load = MachineLoad(0.25, 0.01, 12.3)
    assert MachineLoad.from_dict(load.as_dict()) == load
    for raw in (None, "x", {}, {"others": "a", "steal": 0, "seconds": 1}):
        assert MachineLoad.from_dict(raw) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc accounting is Linux only")
def test_this_machine_can_be_read_and_a_window_records_a_load():
    assert ml.read() is not None
    window = ml.Window()
    with window.measuring():
        time.sleep(0.2)  # /proc/stat counts in 10 ms ticks
    assert window.load is not None and 0.0 <= window.load.busy <= 2.0


def test_waiting_stops_at_a_quiet_window_or_the_deadline(monkeypatch):
    loads = iter([MachineLoad(0.5, 0.0, 1.0), MachineLoad(0.05, 0.0, 1.0)])
    monkeypatch.setattr(ml, "idle_load", lambda seconds: next(loads))
    assert ml.wait_until_quiet(0.1, deadline=float("inf"), probe_s=1.0) == MachineLoad(0.05, 0.0, 1.0)
    monkeypatch.setattr(ml, "idle_load", lambda seconds: MachineLoad(0.5, 0.0, 1.0))
    assert ml.wait_until_quiet(0.1, deadline=0.0, probe_s=1.0) == MachineLoad(0.5, 0.0, 1.0)
