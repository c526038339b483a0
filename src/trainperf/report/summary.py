"""The short results table: one row per benchmark, every kind in one table.

Printed at the end of every ``pytest perf/`` run (:func:`format_results`, from the plugin) and by
``trainperf report --format summary`` for a saved run (:func:`run_lines`). Plain Python, no pandas: the plugin
loads it in every run that measured something.

It fits in ``WIDTH`` (120) columns: a row is named by a label (``#1``) and its test function, and the lines under
the table give each label's full test id (up to 100 characters in a real matrix) and its flags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from trainperf.gate.verdict_report import aligned, labels, percent
from trainperf.report.load import Run
from trainperf.results import CompileTime, K, Result, with_scaling

# The cells of :func:`row`: the full name first and the flags last, both printed under the table.
COLUMNS = (
    "benchmark",
    "img/s",
    "spread",
    "step ms",
    "epoch s",
    "compile s",
    "peak MiB",
    "GPU %",
    "scaling",
    "loss",
    "flags",
)
HEADER = ("#", "benchmark", *COLUMNS[1:-1])
_SHORT = 16  # the longest test function name in the table; the full test id is under it


# The stored numbers the table shows. A kind this trainperf does not know keeps its values unchecked
# (``Result.unknown``), so anything that is not a number shows as "-" instead of failing the table.
_NUMBERS = (
    K.img_per_s,
    K.img_per_s_spread,
    K.step_ms,
    K.epoch_s,
    K.compile_s,
    K.compile_cold_s,
    K.peak_mem_mib,
    K.gpu_util_pct,
    K.scaling_efficiency,
    K.loss_first,
    K.loss_last,
)


def _numbers(flat: dict[str, Any]) -> dict[str, float | None]:
    def number(value: Any) -> float | None:
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return {key: number(flat.get(key)) for key in _NUMBERS}


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _flags(flat: dict[str, Any]) -> str:
    named = (("NOISY", K.noisy), ("THROTTLED", K.throttled), ("NO-CUDAGRAPHS", K.cudagraph_skips))
    return ",".join(flag for flag, key in named if flat.get(key))


def _compile_text(record: Result, flat: dict[str, Any], n: dict[str, float | None]) -> str:
    if isinstance(record, CompileTime):
        return f"{_num(record.compile_cold_s, 1)}/{_num(record.compile_warm_s, 1)} c/w"
    return _num(n[K.compile_s] if K.compile_s in flat else n[K.compile_cold_s], 2)


def _loss_text(n: dict[str, float | None]) -> str:
    first, last = n[K.loss_first], n[K.loss_last]
    if first is None:
        return "-"
    return f"{first:.2f}->" + ("-" if last is None else f"{last:.2f}")


def row(name: str, record: Result) -> tuple[str, ...]:
    """One benchmark's cells, from its result record (read flat, so every kind fills the columns it has)."""
    flat = record.to_extra_info()
    n = _numbers(flat)
    spread, scaling = n[K.img_per_s_spread], n[K.scaling_efficiency]
    return (
        name,
        _num(n[K.img_per_s], 1),
        "-" if spread is None else f"{spread:.1%}",
        _num(n[K.step_ms], 2),
        _num(n[K.epoch_s], 2),
        _compile_text(record, flat, n),
        _num(n[K.peak_mem_mib], 0),
        _num(n[K.gpu_util_pct], 0),
        "-" if scaling is None else percent(scaling, digits=0),
        _loss_text(n),
        _flags(flat),
    )


def _short(name: str) -> str:
    """The test function of a test id, without ``test_``: ``test_epoch[cpu-...]`` is ``epoch``."""
    function = name.split("[", 1)[0].removeprefix("test_")
    return function if len(function) <= _SHORT else function[: _SHORT - 1] + "~"


def table_lines(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """The table of :func:`row` cells, each row labelled ``#n``, then a blank line and one line per label: the full
    test id, and the flags (NOISY, THROTTLED, NO-CUDAGRAPHS) where a row has any."""
    tags = labels(len(rows))
    table = aligned([HEADER, *((tag, _short(r[0]), *r[1:-1]) for tag, r in zip(tags, rows, strict=True))], left=(0, 1))
    width = max(map(len, tags), default=0)
    named = [f"{tag.ljust(width)}  {r[0]}" + (f"  {r[-1]}" if r[-1] else "") for tag, r in zip(tags, rows, strict=True)]
    return [*table, "", *named] if named else table


def format_results(results: Iterable[Any]) -> list[str]:
    """Rows for live results (objects with ``nodeid`` and ``record``, the runner's ``Finished``), with the
    data-parallel cases' scaling efficiency computed over this run."""
    results = list(results)
    records = with_scaling([r.record for r in results])
    return table_lines([row(r.nodeid.rsplit("::", 1)[-1], rec) for r, rec in zip(results, records, strict=True)])


def run_lines(run: Run) -> list[str]:
    """The table of a saved run, its benchmarks in the file's order (scaling computed when the run was read)."""
    return table_lines([row(b.name, b.record) for b in run.benchmarks])
