"""How much of the machine other work took while a case was measured: Linux ``/proc`` accounting, no sampling.

A shared runner slows a whole run down when another process (another job, a test suite, a compiler) or another
guest of the host (CPU steal) takes cores. Two readings of ``/proc/stat`` and of this process tree's CPU times,
one before and one after a measurement, split the machine's CPU time into ours, other processes' and stolen.
A CPU-bound benchmark whose threads lose their cores to others slows far more than the share taken (torch's
OpenMP threads wait on the slowest one), so even a modest share means the numbers say more about the
neighbours than about the code.

Our tree is this process and its live descendants (DataLoader workers, torchrun and its ranks), plus what
descendants that already ended left in their parents' ``cutime``/``cstime``. ``taskset`` limiting us to fewer
cores is *not* contention: the other cores sit idle. Elsewhere than Linux every reading is None.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Share of the machine's CPU time taken by other processes or the hypervisor above which a measurement is
# treated as taken on a busy machine. A quiet 2-core VM shows under 2% (system daemons); one other busy
# single-threaded process on 2 cores shows about 50%.
DEFAULT_BUSY_LIMIT = 0.10


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU clock ticks at one instant."""

    total: int  # every CPU, every state
    busy: int  # every CPU: user, nice, system, irq, softirq (not idle, iowait or steal)
    steal: int  # every CPU: taken by the hypervisor for other guests
    ours: int  # this process tree: user and system, its reaped children's included
    at: float  # time.monotonic()


@dataclass(frozen=True)
class MachineLoad:
    """Shares of the machine's CPU time over a measurement: 0.25 is a quarter of all its cores' time."""

    others: float  # other processes on this machine
    steal: float  # other guests of the host
    seconds: float

    @property
    def busy(self) -> float:
        return self.others + self.steal

    def describe(self) -> str:
        return (
            f"{self.others:.1%} of the machine's CPU went to other processes and {self.steal:.1%} to other guests "
            f"(steal) over {self.seconds:.0f} s"
        )

    def as_dict(self) -> dict[str, float]:
        return {"others": round(self.others, 4), "steal": round(self.steal, 4), "seconds": round(self.seconds, 2)}

    @classmethod
    def from_dict(cls, raw: object) -> MachineLoad | None:
        """The load recorded with a result; None when absent or not of this shape (an older run)."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls(float(raw["others"]), float(raw["steal"]), float(raw["seconds"]))
        except (KeyError, TypeError, ValueError):
            return None


def _machine(proc: Path) -> tuple[int, int, int]:
    with open(proc / "stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    fields += [0] * (8 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    busy = user + nice + system + irq + softirq
    return busy + idle + iowait + steal, busy, steal


def _process_table(proc: Path) -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user+system ticks of it and its reaped children)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat")) as f:
                text = f.read()
        except OSError:  # ended between the listing and the read
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        rest = text[text.rfind(")") + 2 :].split()
        try:
            table[int(entry.name)] = (int(rest[1]), sum(int(v) for v in rest[11:15]))
        except (IndexError, ValueError):
            continue
    return table


def _tree_ticks(table: dict[int, tuple[int, int]], root: int) -> int:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def read(proc: Path = PROC, pid: int | None = None) -> CpuTimes | None:
    """The machine's and this process tree's CPU times now; None where ``/proc`` cannot say."""
    try:
        total, busy, steal = _machine(proc)
        ours = _tree_ticks(_process_table(proc), os.getpid() if pid is None else pid)
    except (OSError, ValueError):
        return None
    return CpuTimes(total, busy, steal, ours, time.monotonic())


def between(before: CpuTimes | None, after: CpuTimes | None) -> MachineLoad | None:
    """What other work took between two readings; None without both or without time between them."""
    if before is None or after is None:
        return None
    total = after.total - before.total
    if total <= 0:
        return None
    others = max(0, (after.busy - before.busy) - (after.ours - before.ours))
    steal = max(0, after.steal - before.steal)
    return MachineLoad(min(1.0, others / total), min(1.0, steal / total), after.at - before.at)


class Window:
    """Brackets a measurement: ``load`` is set when the ``with`` block ends (None where /proc cannot say)."""

    def __init__(self) -> None:
        self.load: MachineLoad | None = None

    @contextmanager
    def measuring(self) -> Iterator[Window]:
        before = read()
        try:
            yield self
        finally:
            self.load = between(before, read())


def idle_load(seconds: float) -> MachineLoad | None:
    """Watch the machine for ``seconds`` while doing nothing: the load other work puts on it now."""
    before = read()
    time.sleep(seconds)
    return between(before, read())


def wait_until_quiet(limit: float, deadline: float, probe_s: float = 10.0) -> MachineLoad | None:
    """Watch the machine in ``probe_s`` windows until other work takes at most ``limit`` of it or the monotonic
    ``deadline`` is too near for another window; returns the last window's load (None where /proc cannot say)."""
    while True:
        load = idle_load(probe_s)
        if load is None or load.busy <= limit or time.monotonic() + probe_s > deadline:
            return load
