"""A short plain-text table of trainperf results, from a live run or a pytest-benchmark JSON file.

``python -m trainperf.table RESULT.json`` prints it for a saved run (the GPU check script ends with it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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


def _num(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def row(name: str, extra: dict[str, Any]) -> tuple[str, ...]:
    flags = []
    if extra.get("noisy"):
        flags.append("NOISY")
    if extra.get("throttled"):
        flags.append("THROTTLED")
    if extra.get("cudagraph_skips"):
        flags.append("NO-CUDAGRAPHS")
    compile_s = extra.get("compile_s", extra.get("compile_cold_s"))
    if "compile_warm_s" in extra:
        compile_s_text = f"{_num(extra.get('compile_cold_s'), 1)}/{_num(extra.get('compile_warm_s'), 1)} c/w"
    else:
        compile_s_text = _num(compile_s, 2)
    loss = "-"
    if extra.get("loss_first") is not None:
        loss = f"{extra['loss_first']:.2f}->{extra['loss_last']:.2f}"
    spread = extra.get("img_per_s_spread")
    return (
        name,
        _num(extra.get("img_per_s"), 1),
        "-" if spread is None else f"{spread:.1%}",
        _num(extra.get("step_ms"), 2),
        _num(extra.get("epoch_s"), 2),
        compile_s_text,
        _num(extra.get("peak_mem_mib"), 0),
        _num(extra.get("gpu_util_pct"), 0),
        "-" if extra.get("scaling_efficiency") is None else f"{extra['scaling_efficiency']:.0%}",
        loss,
        ",".join(flags),
    )


def render(rows: Sequence[tuple[str, ...]]) -> list[str]:
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
    """Rows for live results (objects with ``nodeid`` and ``extra``)."""
    return render([row(r.nodeid.rsplit("::", 1)[-1], r.extra) for r in results])


def format_json(doc: dict[str, Any]) -> list[str]:
    """Rows for a pytest-benchmark JSON document."""
    benchmarks = doc.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise ValueError("not a pytest-benchmark JSON file: no 'benchmarks' list")
    return render([row(b.get("name", "?"), b.get("extra_info") or {}) for b in benchmarks])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m trainperf.table RESULT.json", file=sys.stderr)
        return 2
    path = Path(argv[0])
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        lines = format_json(doc)
    except (OSError, ValueError) as exc:
        print(f"trainperf.table: {path}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
