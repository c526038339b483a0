"""Child processes with a deadline that leave nothing running: the one way trainperf starts another program.

Every child leads a session (and process group) of its own: Ctrl-C at a terminal reaches this process only, which
then stops the child, and signals to the child's group reach what it started, never this process. Whatever ends
the wait (the child exiting, the deadline, Ctrl-C, an exception here) the child, its group and session, and, while
it runs, its descendants in other sessions (torchrun puts each worker in one) get SIGTERM, ``KILL_GRACE_S`` to
exit, then SIGKILL, and are reaped. On Linux the child also gets SIGTERM when this process dies, however it dies
(a cancelled CI job, SIGKILL), since its own session keeps our signals from it.

No pytest, no torch here: compile probes, torchrun launches, fresh pytest runs and A/B sides all start here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

KILL_GRACE_S = 2.0  # SIGTERM to SIGKILL: time to flush a log, not to finish work
REAP_WAIT_S = 10.0
TAIL_LINES = 15
_POLL_S = 0.02
_HAVE_PROC = Path("/proc/self/stat").exists()

PathLike = str | os.PathLike[str]
Output = int | IO[Any] | None


@dataclass(frozen=True)
class Finished:
    """A child that exited on its own: its exit status, what it printed and how long it ran."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class ChildError(Exception):
    """A child could not start, ran past its deadline or exited non-zero; the message names it, says which, and
    ends with the tail of its stderr (its stdout when stderr is empty)."""

    def __init__(
        self,
        what: str,
        command: Sequence[str],
        *,
        seconds: float,
        returncode: int | None = None,
        timeout_s: float | None = None,
        start_error: OSError | None = None,
        stdout: str = "",
        stderr: str = "",
        killed: Sequence[int] = (),
    ) -> None:
        self.what = what
        self.command = list(command)
        self.seconds = seconds
        self.returncode = returncode
        self.timeout_s = timeout_s
        self.start_error = start_error
        self.stdout = stdout
        self.stderr = stderr
        self.killed = list(killed)
        tail = self.tail()
        super().__init__(f"{what} {self.reason}" + (f":\n{tail}" if tail else ""))

    @property
    def timed_out(self) -> bool:
        return self.timeout_s is not None

    @property
    def reason(self) -> str:
        """What went wrong, without the output: "timed out after 8 s", "exited with 1", ..."""
        if self.start_error is not None:
            return f"could not start {self.command[0]}: {self.start_error}"
        if self.timeout_s is not None:
            return f"timed out after {self.timeout_s:g} s"
        if self.returncode is not None and self.returncode < 0:
            return f"was killed by {_signal_name(-self.returncode)}"
        return f"exited with {self.returncode}"

    def tail(self, lines: int = TAIL_LINES) -> str:
        return tail(self.stderr if self.stderr.strip() else self.stdout, lines)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``, trailing blank space dropped."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(
    command: Sequence[PathLike],
    *,
    what: str,
    timeout_s: float,
    cwd: PathLike | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> Finished:
    """Run ``command`` to completion, at most ``timeout_s`` seconds, with its stdout and stderr captured.

    The output is read to its end: a background process the child leaves holding its stdout or stderr open keeps
    the call waiting as if the child ran, up to the deadline.

    Args:
        command: the program and its arguments.
        what: the child in words, for the error message ("compile probe for CASE").
        timeout_s: the deadline; past it the child and everything it started are killed.
        cwd, env: as for ``subprocess.Popen``.
        check: raise ``ChildError`` on a non-zero exit status (otherwise return it).

    Returns:
        The finished child.

    Raises:
        ChildError: it could not start, ran past ``timeout_s``, or (with ``check``) exited non-zero.
    """
    with Child(command, what=what, cwd=cwd, env=env) as child:
        try:
            stdout, stderr = child.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            killed = child.kill()
            stdout, stderr = child.leftover_output()
            raise ChildError(
                what,
                child.command,
                seconds=child.seconds(),
                timeout_s=timeout_s,
                stdout=stdout,
                stderr=stderr,
                killed=killed,
            ) from None
        seconds = child.seconds()
    done = Finished(child.command, child.proc.returncode, stdout or "", stderr or "", seconds)
    if check and done.returncode != 0:
        raise ChildError(
            what, done.command, seconds=seconds, returncode=done.returncode, stdout=done.stdout, stderr=done.stderr
        )
    return done


class Child:
    """A started child in a session of its own. As a context manager it kills whatever of it is left on exit,
    normal or not, so a child's stray background process does not outlive the call either.

    ``strays`` names processes the child started that may have left its tree (a torchrun worker whose torchrun
    died is re-parented and leads its own session); it is asked at kill time, given whether the child still runs.

    Raises:
        ChildError: the command could not be started (``start_error`` holds the ``OSError``).
    """

    def __init__(
        self,
        command: Sequence[PathLike],
        *,
        what: str,
        cwd: PathLike | None = None,
        env: dict[str, str] | None = None,
        stdout: Output = subprocess.PIPE,
        stderr: Output = subprocess.PIPE,
        strays: Callable[[bool], Iterable[int]] | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.command = [os.fspath(part) for part in command]
        self.what = what
        self.strays = strays
        self.started = time.monotonic()
        try:
            self.proc: subprocess.Popen[str] = subprocess.Popen(
                self.command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                text=True,
                errors="replace",
                start_new_session=True,
                preexec_fn=death_signal_hook() if die_with_parent else None,
            )
        except OSError as exc:
            raise ChildError(what, self.command, seconds=self.seconds(), start_error=exc) from exc

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        # KeyboardInterrupt included: nothing of ours may keep running on a shared runner.
        self.kill()
        self.leftover_output()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def wait(self, timeout_s: float) -> int:
        """The exit status; past ``timeout_s`` the child and what it started are killed and ``ChildError`` (with
        ``killed``) is raised. Output goes where the constructor sent it: read a file's tail yourself."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            killed = self.kill()
            raise ChildError(
                self.what, self.command, seconds=self.seconds(), timeout_s=timeout_s, killed=killed
            ) from None

    def kill(self, grace_s: float = KILL_GRACE_S) -> list[int]:
        """SIGTERM to the child, its group and session, its descendants and strays; SIGKILL to what is left after
        ``grace_s``; reap the child. Returns the pids found (empty when the child had exited and left nothing)."""
        running = self.proc.poll() is None
        victims = [p for p in self._victims(running) if (p == self.pid and running) or alive(p)]
        if victims:
            self._signal(victims, signal.SIGTERM)
            _wait_gone(self.proc, victims, grace_s)
        if victims or not _HAVE_PROC:  # without /proc the group's members are unknown: SIGKILL to none is harmless
            # Only those still alive: a pid that exited in the grace period may already be someone else's.
            self._signal([p for p in victims if alive(p)], getattr(signal, "SIGKILL", signal.SIGTERM))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=REAP_WAIT_S)
        _wait_gone(self.proc, victims, REAP_WAIT_S)
        return victims

    def leftover_output(self) -> tuple[str, str]:
        """What a killed child wrote to its pipes, then the pipes closed; a process that escaped the kill and holds
        a pipe open costs at most ``REAP_WAIT_S``."""
        try:
            stdout, stderr = self.proc.communicate(timeout=REAP_WAIT_S)
        except (subprocess.TimeoutExpired, ValueError, OSError):  # ValueError: the pipes were already closed
            stdout = stderr = ""
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return stdout or "", stderr or ""

    def _victims(self, running: bool) -> list[int]:
        # The child's descendants only while it runs: once reaped its pid may be someone else's. Its session and
        # group ids stay reserved while any member lives, so their members (and their descendants) are ours.
        table = _process_table()
        children = _children(table)
        roots = [self.pid] if running else []
        roots += [pid for pid, fields in table.items() if fields[0] != "Z" and self.pid in _group_and_session(fields)]
        found = [*roots, *(d for root in roots for d in _subtree(children, root))]
        if self.strays is not None:
            found += self.strays(running)
        return list(dict.fromkeys(found))

    def _signal(self, victims: Iterable[int], sig: int) -> None:
        killpg = getattr(os, "killpg", None)  # no process groups on Windows
        for pid in dict.fromkeys([self.pid, *victims]):
            # A victim that leads a group of its own (a torchrun worker) takes its group down with it.
            targets = [os.kill] if killpg is None else [killpg, os.kill]
            if pid == self.pid and self.proc.returncode is not None:
                targets = [killpg] if killpg is not None else []  # the reaped child's pid may be someone else's
            for kill in targets:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, sig)


def death_signal_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies (Linux ``PR_SET_PDEATHSIG``), or
    None where the platform has no such thing or libc cannot be loaded.

    The signal comes when the *thread* that started the child ends, so start children from a thread that outlives
    them (pytest's main thread does). prctl is looked up here, before the fork: importing in the forked child of a
    threaded process can deadlock.
    """
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return hook


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _wait_gone(proc: subprocess.Popen[Any], victims: Sequence[int], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while proc.poll() is None or any(alive(p) for p in victims if p != proc.pid):
        if time.monotonic() >= deadline:
            return
        time.sleep(_POLL_S)


def _stat_fields(stat: Path) -> list[str] | None:
    """The fields of a /proc/<pid>/stat after the command name (state, parent, group, session, ...), or None when
    the process is gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_table() -> dict[int, list[str]]:
    """Every process's /proc stat fields by pid (empty without /proc)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        if (fields := _stat_fields(stat)) is not None:
            table[int(stat.parent.name)] = fields
    return table


def _group_and_session(fields: list[str]) -> tuple[int, int]:
    return int(fields[2]), int(fields[3])


def _children(table: dict[int, list[str]]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        children.setdefault(int(fields[1]), []).append(pid)
    return children


def _subtree(children: dict[int, list[int]], pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited: it only waits for its parent to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # Windows: a pid that is gone
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        fields = _stat_fields(stat)
        return bool(fields) and fields[0] != "Z"
    return True


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, whatever session it is in (Linux /proc; empty elsewhere)."""
    return _subtree(_children(_process_table()), pid)
