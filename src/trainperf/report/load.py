"""Saved runs of this suite read into records: files, autosaves and whole ``.benchmarks/`` histories.

Pure logic plus file I/O, no pytest, no pandas: every later step (tables, the short summary, charts) starts from
the :class:`Run` and :class:`Machine` records built here, and every problem is a :class:`ReportError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainperf.gate.runs import RunError, read_document
from trainperf.results import K, Result, ResultError, from_extra_info, with_scaling


class ReportError(Exception):
    """An input the report cannot use; the message is ``PATH: problem``."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Benchmark:
    """One trainperf benchmark of a saved run: its pytest-benchmark name and its result record."""

    name: str
    record: Result

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def case_id(self) -> str:
        return self.record.case_id

    @property
    def config(self) -> dict[str, Any]:
        return self.record.identity.config


@dataclass(frozen=True)
class Run:
    """One pytest-benchmark JSON document: one run of the suite on one machine."""

    path: Path
    when: datetime
    info: dict[str, Any]  # machine_info["trainperf"]
    key: str  # its machine key
    commit: dict[str, Any]
    benchmarks: tuple[Benchmark, ...]

    @property
    def machine_identity(self) -> tuple[str, str, str]:
        return self.key, str(self.info.get("gpu_name") or ""), str(self.info.get("cpu_model") or "")


@dataclass(frozen=True)
class Machine:
    """The runs of one machine, oldest first. ``label`` is the machine key, made unique when two machines share a
    key (same GPU and versions, different CPU)."""

    key: str
    label: str
    runs: tuple[Run, ...]

    @property
    def latest(self) -> Run:
        return self.runs[-1]


def _benchmark(raw: Any, index: int, path: Path) -> Benchmark | None:
    if not isinstance(raw, dict):
        raise ReportError(path, f"benchmarks[{index}] is not an object")
    extra = raw.get("extra_info")
    if not isinstance(extra, Mapping) or K.trainperf_kind not in extra:
        return None  # another suite's benchmark in the same file (a kind that is not a string is an error below)
    name = raw.get("name") if isinstance(raw.get("name"), str) else f"benchmarks[{index}]"
    param = raw.get("param")
    try:
        record = from_extra_info(extra, case_id=param if isinstance(param, str) else None)
    except ResultError as exc:
        raise ReportError(path, f"{name}: {exc}") from None
    return Benchmark(name, record)


def _scaled(benchmarks: Sequence[Benchmark]) -> tuple[Benchmark, ...]:
    """The benchmarks with scaling efficiency computed over the run (newer runs store none; older ones did)."""
    records = with_scaling([b.record for b in benchmarks])
    return tuple(replace(b, record=r) for b, r in zip(benchmarks, records, strict=True))


def _when(value: Any, path: Path) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(path, f"no valid 'datetime' (got {value!r}); pytest-benchmark writes one") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_run(doc: Any, path: Path) -> Run:
    """Validate a decoded pytest-benchmark document; every problem is a ReportError naming ``path``.

    The document itself is checked as the gate and promotion check it (``runs.read_document``); the report then
    keeps every trainperf benchmark, compile time and loaders included, and needs the run's date.
    """
    try:
        document = read_document(doc, str(path))
    except RunError as exc:
        raise ReportError(path, str(exc).removeprefix(f"{path}: ")) from None
    found = (_benchmark(raw, i, path) for i, raw in enumerate(document.benchmarks))
    benchmarks = _scaled([b for b in found if b is not None])
    if not benchmarks:
        raise ReportError(path, f"no trainperf benchmarks (no {K.trainperf_kind!r} in any extra_info)")
    return Run(path, _when(doc.get("datetime"), path), document.info, document.key, document.commit, benchmarks)


def load_run(path: Path) -> Run:
    """Read one pytest-benchmark JSON file written by this suite."""
    from trainperf.gate.baseline import BaselineError, read_json

    try:
        doc = read_json(path, what="file or directory")
    except BaselineError as exc:
        raise ReportError(path, str(exc).removeprefix(f"{path}: ")) from None
    return parse_run(doc, path)


def _json_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise ReportError(path, "no *.json files in this directory")
        return files
    if not path.exists():
        raise ReportError(path, "no such file or directory")
    return [path]


def load_runs(paths: Iterable[Path]) -> list[Run]:
    """Every run in ``paths`` (files, or directories searched for ``*.json``), oldest first by ``datetime``."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for path in paths:
        for file in _json_files(path):
            if file.resolve() not in seen:
                seen.add(file.resolve())
                runs.append(load_run(file))
    return sorted(runs, key=lambda run: run.when)


def group_by_machine(runs: Sequence[Run]) -> list[Machine]:
    """The runs split per machine, sorted by label; within a machine, in the order given."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault(run.machine_identity, []).append(run)
    keys = [ident[0] for ident in groups]
    machines = []
    for ident, members in groups.items():
        key, gpu, cpu = ident
        label = key if keys.count(key) == 1 else f"{key} (GPU {gpu or 'none'}, CPU {cpu or 'unknown'})"
        machines.append(Machine(key, label, tuple(members)))
    return sorted(machines, key=lambda m: m.label)
