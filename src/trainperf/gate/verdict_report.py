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
import textwrap
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from trainperf.gate.verdict import Comparison

SCHEMA = "trainperf-verdict"
SCHEMA_VERSION = 1
_FIELDS = {f.name for f in dataclasses.fields(Comparison)}

# The widest line a terminal table prints: a CI log or a laptop terminal shows it without wrapping. Test ids of a
# real matrix run to 100 characters, so the tables name each row by a label and list the ids below them.
WIDTH = 120

_LEGEND = (
    "ref img/s: the reference's img/s (the centre of its runs); change: this run against the reference; confirm: "
    "the fresh process that re-measured a suspect; threshold: the drop that fails (max of tolerance and between-run "
    "noise); detectable: the drop caught in 80% of runs; noise: between-run noise; runs: reference/current runs "
    "(pairs for A/B); *: this machine's noise, not the tolerance, sets the threshold (noise > tolerance)"
)
HEADER = ("#", "ref img/s", "current img/s", "change", "confirm", "threshold", "detectable", "noise", "runs", "verdict")


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


def percent(fraction: float, *, digits: int = 1, sign: str = "") -> str:
    """``fraction`` as a percentage with ``digits`` decimals, or with more (up to four) where those would show a
    value that is not zero as zero: with ``digits=0`` a 0.1% limit reads "0.1%", not "0%"; 0.04% reads "0.04%"."""
    value = fraction * 100
    while digits < 4 and value and abs(value) < 10**-digits:
        digits += 1
    return f"{value:{sign}.{digits}f}%"


def labels(count: int) -> list[str]:
    """Row labels ``#1``, ``#2``, ...: what a table prints in place of a test id that would not fit."""
    return [f"#{i}" for i in range(1, count + 1)]


def aligned(rows: Sequence[Sequence[str]], *, left: Collection[int] = (0,)) -> list[str]:
    """``rows`` (the first one a header, with a rule under it) in columns two spaces apart; the columns in ``left``
    (names, words) align left, the others (numbers) right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = (c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "  ".join(cells).rstrip()

    return [line(rows[0]), "  ".join("-" * w for w in widths), *(line(row) for row in rows[1:])]


def _pct(value: float | None, sign: str = "+") -> str:
    # A measured change of +0.002% is no change: one decimal says so.
    return "" if value is None else f"{value:{sign}.1%}"


def _drop(value: float | None) -> str:
    # A limit: a 0.04% tolerance must not read "-0.0%".
    return "" if value is None else f"-{percent(value)}"


def _img_per_s(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _verdict(row: Comparison) -> str:
    """The verdict in full, as the line under the table names it."""
    return row.verdict + (" (noise > tolerance)" if row.underpowered else "")


def _cells(row: Comparison) -> tuple[str, ...]:
    # The table's verdict is the verdict's first words ("inconclusive", "no verdict"); the line naming the row
    # below the table says the rest.
    short = row.verdict.split(" — ", 1)[0] + (" *" if row.underpowered else "")
    return (
        _img_per_s(row.baseline),
        _img_per_s(row.current),
        _pct(row.change),
        _pct(row.confirmation),
        _drop(row.threshold),
        _drop(row.detectable),
        _pct(row.noise, ""),
        "" if row.runs is None else f"{row.runs[0]}/{row.runs[1]}",
        short,
    )


def table_lines(rows: list[Comparison]) -> list[str]:
    """The verdict table, one row per benchmark and reference, each row labelled ``#n``; under it, per reference,
    one line per label with the full test id and verdict. Fits in WIDTH columns: the ids (up to 100 characters in a
    real matrix) and the references' file names are in the lines under the table, not in it."""
    if not rows:
        return ["(no benchmarks compared)"]
    tags = labels(len(rows))
    out = aligned([HEADER, *((tag, *_cells(row)) for tag, row in zip(tags, rows, strict=True))], left=(0, 9))
    width = len(tags[-1])
    for against in dict.fromkeys(row.against for row in rows):
        out.append(f"against {against}:")
        out += [
            f"{tag.ljust(width)}  {row.name}: {_verdict(row)}"
            for tag, row in zip(tags, rows, strict=True)
            if row.against == against
        ]
    return out


def legend() -> str:
    """What the table's columns mean, in lines of at most WIDTH characters."""
    return "\n".join(textwrap.wrap(_LEGEND, WIDTH, break_on_hyphens=False))
