"""A saved run of this suite (pytest-benchmark JSON): its machine key and each throughput benchmark's rounds.

Shared by the gate (the run ``--benchmark-compare`` loads) and baseline promotion. Pure logic, no pytest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainperf import baseline as bl
from trainperf.machine_key import machine_key


class RunError(Exception):
    """A file is not a usable run of this suite; the message names it and the problem."""


@dataclass(frozen=True)
class Throughput:
    """One throughput benchmark of a run: median img/s, per-round img/s, IQR/median spread, its extra_info."""

    img_per_s: float
    samples: tuple[float, ...]
    spread: float | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class SavedRun:
    source: str
    key: str
    info: dict[str, Any]  # machine_info["trainperf"]
    commit: str | None
    date: str | None
    results: dict[str, Throughput]


@dataclass(frozen=True)
class Document:
    """What every reader of a saved run needs from its pytest-benchmark document, checked in one place."""

    benchmarks: list[Any]
    info: dict[str, Any]  # machine_info["trainperf"]
    key: str
    commit: dict[str, Any]


def read_document(doc: Any, source: str) -> Document:
    """The benchmarks list, trainperf's machine info and its machine key; RunError naming ``source`` otherwise."""
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise RunError(f"{source}: not pytest-benchmark output (no 'benchmarks' list)")
    machine = doc.get("machine_info")
    info = machine.get("trainperf") if isinstance(machine, dict) else None
    if not isinstance(info, dict):
        raise RunError(f"{source}: no machine_info.trainperf; this run was not recorded by the trainperf suite")
    try:
        key = machine_key(info)
    except (AttributeError, TypeError):
        raise RunError(f"{source}: machine_info.trainperf is malformed; cannot compute its machine key") from None
    commit = doc.get("commit_info")
    return Document(doc["benchmarks"], info, key, commit if isinstance(commit, dict) else {})


def parse_run(doc: Any, source: str) -> SavedRun:
    """Validate a decoded pytest-benchmark document and keep its trainperf throughput benchmarks (compile-time
    and foreign benchmarks carry no img/s rounds and are left out)."""
    document = read_document(doc, source)
    results: dict[str, Throughput] = {}
    for bench in document.benchmarks:
        if not isinstance(bench, dict):
            raise RunError(f"{source}: a benchmark entry is not an object")
        extra = bench.get("extra_info")
        if not isinstance(extra, dict) or "img_per_s_rounds" not in extra:
            continue
        name = bench.get("name")
        if not isinstance(name, str):
            raise RunError(f"{source}: a benchmark has no name")
        if name in results:
            raise RunError(f"{source}: benchmark {name} appears twice")
        results[name] = _throughput(source, document.key, name, extra)
    commit = document.commit.get("id")
    date = doc.get("datetime")
    return SavedRun(
        source=source,
        key=document.key,
        info=document.info,
        commit=commit if isinstance(commit, str) else None,
        date=date if isinstance(date, str) else None,
        results=results,
    )


def _throughput(source: str, key: str, name: str, extra: dict[str, Any]) -> Throughput:
    # The baseline's own validation: a trainperf benchmark id, a positive img/s, positive samples.
    raw = {"img_per_s": extra.get("img_per_s"), "samples": extra.get("img_per_s_rounds")}
    doc = {"schema": bl.SCHEMA, "schema_version": bl.SCHEMA_VERSION, "machine_key": key, "benchmarks": {name: raw}}
    try:
        entry = bl.parse(doc, Path(source)).entries[name]
    except bl.BaselineError as exc:
        raise RunError(str(exc)) from None
    spread = extra.get("img_per_s_spread")
    if spread is not None and (
        not isinstance(spread, (int, float)) or isinstance(spread, bool) or not math.isfinite(spread) or spread < 0
    ):
        raise RunError(f"{source}: {name}: img_per_s_spread must be a non-negative number, got {spread!r}")
    return Throughput(entry.img_per_s, entry.samples, None if spread is None else float(spread), extra)


def load_run(path: Path) -> SavedRun:
    try:
        doc = bl.read_json(path, what="file")
    except bl.BaselineError as exc:
        raise RunError(str(exc)) from None
    return parse_run(doc, str(path))
