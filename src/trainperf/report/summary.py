"""The short results table: one row per benchmark, every kind in one table.

Printed at the end of every ``pytest perf/`` run (:func:`format_results`, from the plugin) and by
``trainperf report --format summary`` for a saved run (:func:`run_lines`). Plain Python, no pandas: the plugin
loads it in every run that measured something.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from trainperf.report.load import Run
from trainperf.results import CompileTime, K, Result, with_scaling

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
        "-" if scaling is None else f"{scaling:.0%}",
        _loss_text(n),
        _flags(flat),
    )


def table_lines(rows: Sequence[tuple[str, ...]]) -> list[str]:
    table = [COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = []
    for i, r in enumerate(table):
        cells = [c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def format_results(results: Iterable[Any]) -> list[str]:
    """Rows for live results (objects with ``nodeid`` and ``record``, the runner's ``Finished``), with the
    data-parallel cases' scaling efficiency computed over this run."""
    results = list(results)
    records = with_scaling([r.record for r in results])
    return table_lines([row(r.nodeid.rsplit("::", 1)[-1], rec) for r, rec in zip(results, records, strict=True)])


def run_lines(run: Run) -> list[str]:
    """The table of a saved run, its benchmarks in the file's order (scaling computed when the run was read)."""
    return table_lines([row(b.name, b.record) for b in run.benchmarks])
