"""How fast this machine is right now, measured on work that does not depend on the code under test.

A shared host can slow a whole VM down without anything showing inside it: a neighbour on the sibling
hyperthreads of our cores, a lower clock, a busier memory bus. /proc shows neither other processes nor steal,
yet every benchmark of a run drops together by 20-30% (seen on this project's 2-core runner). A probe that
runs the same fixed work every time (SHA-256 over a fixed 1 MiB buffer, one thread, standard library only)
tells such a machine from slower code: a recording keeps the probe's speed beside its runs, and a regression
is judged against how much slower the probe is now.

One thread on purpose: ``taskset`` giving a run fewer cores leaves the probe's speed alone, so a run starved of
cores is still a slower run, not a slower machine.
"""

from __future__ import annotations

import hashlib
import time

_BUFFER = bytes(range(256)) * 4096  # 1 MiB
PROBE_S = 0.3
WINDOWS = 3


def probe(seconds: float = PROBE_S) -> float:
    """MiB/s of single-threaded SHA-256 over a fixed buffer: the best of ``WINDOWS`` windows, so one preempted
    window does not count, while a slowdown that lasts the whole probe does."""
    best = 0.0
    for _ in range(WINDOWS):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / WINDOWS:
            hashlib.sha256(_BUFFER).digest()
            done += 1
        best = max(best, done / elapsed)
    return round(best, 1)
