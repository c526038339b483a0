"""``trainperf report``: tables and charts of saved pytest-benchmark runs of this suite, and the short results
table printed at the end of every run. :mod:`~trainperf.report.load` reads ``--benchmark-json`` files, autosaves
and whole ``.benchmarks/`` histories into :class:`Run` and :class:`Machine` records (runs from different machines
are never mixed: each machine gets its own section); :mod:`~trainperf.report.tables` builds the pandas frames of a
run; :mod:`~trainperf.report.render` writes text, markdown, CSV or the short table of
:mod:`~trainperf.report.summary`; :mod:`~trainperf.report.exports` writes the JSON that github-action-benchmark and
Bencher read; :mod:`~trainperf.report.charts` draws PNG charts with matplotlib. Pure logic
plus file I/O, no pytest; importing the package imports neither pandas nor matplotlib (``tables`` and the chart
functions bring them in when used).
"""

from __future__ import annotations

from trainperf.report.load import Benchmark, Machine, ReportError, Run, group_by_machine, load_run, load_runs, parse_run
from trainperf.report.render import EXPORTS, FORMATS, MACHINE_READABLE, describe_machine, render, when_text

__all__ = [
    "EXPORTS",
    "FORMATS",
    "MACHINE_READABLE",
    "Benchmark",
    "Machine",
    "ReportError",
    "Run",
    "describe_machine",
    "group_by_machine",
    "load_run",
    "load_runs",
    "parse_run",
    "render",
    "when_text",
]
