"""Progress lines for long cases, so an epoch benchmark that runs for minutes does not look hung.

A case whose rounds take longer than ``PROGRESS_AFTER_S`` in all (estimated from the rounds so far, or already
past it) gets a line through pytest's terminal reporter after its warm-up and its rounds, at most one every
``PROGRESS_EVERY_S`` (the last round always):

    epoch[cpu-eager-...]: round 2/5, 1,234 img/s

Whole lines, never carriage returns, so a CI log reads line by line; nothing under ``-q``. The measurement core
only calls a plain ``on_round(done, total, img_per_s)``: this module is what turns that into terminal lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from trainperf.pytest_edge.compat import uncaptured

# "A few seconds": shorter cases finish before anyone wonders whether they hang. Module constants, read when a
# case starts, so a test can lower them.
PROGRESS_AFTER_S = 5.0
PROGRESS_EVERY_S = 2.0


class Progress:
    """The ``on_round`` callback of one case: decides when a line is due and writes it with ``write``."""

    def __init__(
        self,
        label: str,
        write: Callable[[str], None],
        *,
        after_s: float | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self._write = write
        self._after_s = PROGRESS_AFTER_S if after_s is None else after_s
        self._every_s = PROGRESS_EVERY_S if every_s is None else every_s
        self._clock = clock
        self._start = self._previous = clock()
        self._last_line: float | None = None

    def __call__(self, done: int, total: int, img_per_s: float) -> None:
        now = self._clock()
        round_s, self._previous = now - self._previous, now
        # The rounds still to run take about as long as the last one each (the warm-up stands in for a round).
        if self._last_line is None and now - self._start + round_s * (total - done) <= self._after_s:
            return
        if self._last_line is not None and now - self._last_line < self._every_s and done < total:
            return
        self._last_line = now
        self._write(line(self.label, done, total, img_per_s))


def line(label: str, done: int, total: int, img_per_s: float) -> str:
    """One progress line: the round (or the warm-up) and its throughput."""
    where = f"round {done}/{total}" if done else f"warm-up done, {total} timed round{'s' * (total != 1)} next"
    return f"  {label}: {where}, {img_per_s:,.0f} img/s"


def progress_for(config: pytest.Config, label: str) -> Progress | None:
    """The progress callback of the case ``label``; None under ``-q`` or without a terminal (xdist workers)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.get_verbosity() < 0:
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(text: str) -> None:
        with uncaptured(capture):
            reporter.write_line(text)

    return Progress(label, write)
