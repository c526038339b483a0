"""child_process: real tiny children (``python -c``), their output, their failures and what is left after them."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainperf import child_process
from trainperf.child_process import Child, ChildError, alive

PY = sys.executable

# The child starts two sleeping grandchildren: one in its process group, one in a session of its own (as torchrun
# starts its workers), each writing its pid to a file; the child says so on stderr and sleeps.
SPAWNER = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path
    out = Path(sys.argv[1])
    sleeper = "import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); " \\
        "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(60)"
    for name, own_session in (("grandchild", False), ("worker", True)):
        subprocess.Popen([sys.executable, "-c", sleeper, str(out / name)], start_new_session=own_session,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not all((out / name).exists() for name in ("grandchild", "worker")):
        time.sleep(0.01)
    print("grandchildren started", file=sys.stderr, flush=True)
    if len(sys.argv) > 2:
        sys.exit(int(sys.argv[2]))
    time.sleep(60)
    """
)


def _pids(out: Path) -> list[int]:
    return [int((out / name).read_text()) for name in ("grandchild", "worker")]


def _gone(pids: list[int], within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_child_that_succeeds_returns_its_output():
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    done = child_process.run([PY, "-c", code], what="tiny child", timeout_s=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "to stdout\n", "to stderr\n")
    assert 0 < done.seconds < 30 and done.command == [PY, "-c", code]


def test_a_failing_child_raises_with_the_tail_of_its_stderr():
    code = "import sys\nfor i in range(40): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    with pytest.raises(ChildError) as info:
        child_process.run([PY, "-c", code], what="tiny child", timeout_s=30)
    message = str(info.value)
    assert message.startswith("tiny child exited with 3:\n")
    assert message.endswith("line 39") and "line 25" in message and "line 24" not in message  # the last 15 lines
    assert (info.value.returncode, info.value.timed_out) == (3, False)


def test_without_check_a_failing_child_is_returned():
    done = child_process.run([PY, "-c", "print('out'); raise SystemExit(2)"], what="x", timeout_s=30, check=False)
    assert (done.returncode, done.stdout) == (2, "out\n")


def test_a_program_that_does_not_exist_cannot_start(tmp_path):
    missing = str(tmp_path / "no-such-python")
    with pytest.raises(ChildError, match=r"^tiny child could not start .*no-such-python") as info:
        child_process.run([missing], what="tiny child", timeout_s=30)
    assert isinstance(info.value.start_error, FileNotFoundError)


def test_the_message_names_a_signal_and_falls_back_to_stdout():
    error = ChildError("probe", ["p"], seconds=1.0, returncode=-signal.SIGKILL, stdout="a\nb\n")
    assert str(error) == "probe was killed by SIGKILL:\na\nb"
    assert str(ChildError("probe", ["p"], seconds=1.0, timeout_s=2.5)) == "probe timed out after 2.5 s"


def test_a_timeout_kills_the_child_and_its_grandchildren(tmp_path):
    with pytest.raises(ChildError) as info:
        child_process.run([PY, "-c", SPAWNER, str(tmp_path)], what="spawner", timeout_s=3)
    error = info.value
    assert str(error) == "spawner timed out after 3 s:\ngrandchildren started"  # stderr read up to the kill
    pids = _pids(tmp_path)
    assert set(pids) <= set(error.killed)
    assert _gone(pids)


def test_an_exception_in_the_parent_kills_the_child_and_its_grandchildren(tmp_path):
    with pytest.raises(KeyboardInterrupt), Child([PY, "-c", SPAWNER, str(tmp_path)], what="spawner") as child:
        deadline = time.monotonic() + 5
        while not (tmp_path / "worker").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise KeyboardInterrupt
    assert child.proc.returncode is not None
    assert _gone(_pids(tmp_path))


def test_what_a_child_leaves_running_when_it_exits_is_killed(tmp_path):
    # Its group's members are found by their group; one in a session of its own only while the child runs, or,
    # after, through ``strays`` (as distributed finds a torchrun worker by its pid file).
    with Child(
        [PY, "-c", SPAWNER, str(tmp_path), "0"], what="spawner", strays=lambda running: _pids(tmp_path)[1:]
    ) as child:
        assert child.wait(30) == 0
        assert set(child.kill()) == set(_pids(tmp_path))
    assert _gone(_pids(tmp_path))


@pytest.mark.skipif(child_process.death_signal_hook() is None, reason="PR_SET_PDEATHSIG is Linux only")
def test_a_child_dies_with_its_parent():
    # The parent starts a sleeping child and is killed with SIGKILL: no handler, no cleanup of its own runs.
    parent_code = textwrap.dedent(
        """
        import sys, time
        from trainperf.child_process import Child
        child = Child([sys.executable, "-c", "import time; time.sleep(60)"], what="sleeper")
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([PY, "-c", parent_code], stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            pid = int(parent.stdout.readline())
            assert alive(pid)
        finally:
            parent.kill()
    assert _gone([pid])


@pytest.mark.skipif(child_process.death_signal_hook() is None, reason="PR_SET_PDEATHSIG is Linux only")
def test_a_compile_probe_dies_with_its_parent(tmp_path):
    # The compile probe goes through the same launcher: a parent killed mid-probe leaves no probe running.
    (tmp_path / "stuck_model.py").write_text(
        "import os, sys, time\n"
        "def make(num_classes=10):\n"
        f"    open({str(tmp_path / 'probe.pid')!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
    )
    parent_code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from trainperf.measurement.cases import Case
        from trainperf.measurement.compile_time import cold_and_warm
        case = Case("cpu", "default", "fp32", "contiguous", "stuck_model:make", 4, "foreach")
        cold_and_warm(case, warmup_steps=2, tf32=True, cudnn_benchmark=True, seed=0)
        """
    )
    pid_file = tmp_path / "probe.pid"
    with subprocess.Popen([PY, "-c", parent_code]) as parent:
        try:
            deadline = time.monotonic() + 120
            while not pid_file.exists() or not pid_file.read_text():
                assert time.monotonic() < deadline and parent.poll() is None, "the probe never started"
                time.sleep(0.1)
            pid = int(pid_file.read_text())
            assert alive(pid)
        finally:
            parent.kill()
    assert _gone([pid])
