"""Verdicts as a table and as JSON: the same for the pytest gate and for ``trainperf ab``, and readable by
``trainperf report``. No pytest import.

Layout (schema_version 1)::

    {"schema": "trainperf-verdict", "schema_version": 1, "mode": "baseline" | "ab",
     "machine_key": "...", "exit_code": 0, "notes": ["..."],
     "comparisons": [{"name": "...", "verdict": "ok", "baseline": 616.3, "current": 610.2, "change": -0.0099,
                      "tolerance": 0.05, "threshold": 0.12, "detectable": 0.16, "noise": 0.04,
                      "runs": [3, 1], "first": null, "confirmation": null, "against": "baseline x.json"}]}
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from trainperf.gate.verdict import Comparison

SCHEMA = "trainperf-verdict"
SCHEMA_VERSION = 1
_FIELDS = {f.name for f in dataclasses.fields(Comparison)}


class VerdictFileError(Exception):
    """A verdict JSON file cannot be read; the message names the file and the problem."""


def document(rows: list[Comparison], *, mode: str, machine_key: str, exit_code: int, notes: list[str]) -> dict:
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "machine_key": machine_key,
        "exit_code": exit_code,
        "notes": notes,
        "comparisons": [dataclasses.asdict(row) for row in rows],
    }


def write(path: Path, doc: dict) -> None:
    """Write atomically (a temporary file and a rename), so a reader never sees half a verdict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_verdict(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA


def parse(doc: Any, source: str) -> tuple[list[Comparison], dict[str, Any]]:
    """Comparisons and the rest of a decoded verdict document; VerdictFileError naming ``source``."""
    if not is_verdict(doc):
        raise VerdictFileError(f"{source}: not a trainperf verdict file (schema {SCHEMA!r})")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise VerdictFileError(
            f"{source}: verdict schema_version {version!r}; this trainperf reads {SCHEMA_VERSION} (upgrade it)"
        )
    raw = doc.get("comparisons")
    if not isinstance(raw, list) or not all(isinstance(r, dict) and _FIELDS.issuperset(r) for r in raw):
        raise VerdictFileError(f"{source}: 'comparisons' must be a list of verdict objects")
    try:
        rows = [Comparison(**{**r, "runs": tuple(r["runs"]) if r.get("runs") else None}) for r in raw]
    except (TypeError, KeyError) as exc:
        raise VerdictFileError(f"{source}: a comparison is malformed ({exc})") from None
    return rows, {k: v for k, v in doc.items() if k != "comparisons"}


def _pct(value: float | None, sign: str = "+") -> str:
    if value is None:
        return ""
    return f"{value:{sign}.1%}"


def table_lines(rows: list[Comparison]) -> list[str]:
    """The verdict table, one row per benchmark and reference."""
    import pandas as pd

    if not rows:
        return ["(no benchmarks compared)"]

    def runs(row: Comparison) -> str:
        return "" if row.runs is None else f"{row.runs[0]}/{row.runs[1]}"

    frame = pd.DataFrame(
        [
            {
                "benchmark": r.name,
                "against": r.against,
                "ref img/s": "" if r.baseline is None else f"{r.baseline:,.1f}",
                "current img/s": "" if r.current is None else f"{r.current:,.1f}",
                "change": _pct(r.change),
                "confirm": _pct(r.confirmation),
                "threshold": "" if r.threshold is None else f"-{r.threshold:.1%}",
                "detectable": "" if r.detectable is None else f"-{r.detectable:.1%}",
                "noise": _pct(r.noise, ""),
                "runs": runs(r),
                "verdict": r.verdict + (" (noise > tolerance)" if r.underpowered else ""),
            }
            for r in rows
        ]
    )
    return frame.to_string(index=False).splitlines()


def legend() -> str:
    return (
        "change: this run against the reference; confirm: the fresh process that re-measured a suspect; "
        "threshold: the drop that fails (max of tolerance and between-run noise); detectable: the drop caught "
        "in 80% of runs; noise: between-run noise; runs: reference/current runs (pairs for A/B)"
    )
