"""A saved run of this suite (pytest-benchmark JSON): its machine key and each throughput benchmark's rounds.

Shared by the gate (the run ``--benchmark-compare`` loads) and baseline promotion. Pure logic, no pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainperf.gate import baseline as bl
from trainperf.machine.key import machine_key
from trainperf.results import Rates, Result, ResultError, from_extra_info, is_result, with_scaling


class RunError(Exception):
    """A file is not a usable run of this suite; the message names it and the problem."""


@dataclass(frozen=True)
class Throughput:
    """One throughput benchmark of a run: its whole record, and the numbers the gate reads from it."""

    record: Result

    @property
    def img_per_s(self) -> float:
        """The run's median img/s."""
        return self._rates.img_per_s

    @property
    def samples(self) -> tuple[float, ...]:
        """Img/s per timed round."""
        return self._rates.img_per_s_rounds

    @property
    def spread(self) -> float | None:
        """IQR over median of the rounds."""
        return self._rates.img_per_s_spread

    @property
    def _rates(self) -> Rates:
        assert self.record.rates is not None, "a Throughput is made of a result with throughput"
        return self.record.rates


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
        if not is_result(extra):
            continue
        name = bench.get("name")
        if not isinstance(name, str):
            raise RunError(f"{source}: a benchmark has no name")
        param = bench.get("param")
        case_id = param if isinstance(param, str) else name.partition("[")[2].removesuffix("]") or None
        try:
            record = from_extra_info(extra, case_id=case_id)
        except ResultError as exc:
            raise RunError(f"{source}: {name}: {exc}") from None
        if record.rates is None:
            continue
        if name in results:
            raise RunError(f"{source}: benchmark {name} appears twice")
        results[name] = _throughput(source, document.key, name, record)
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


def _throughput(source: str, key: str, name: str, record: Result) -> Throughput:
    rates = record.rates
    assert rates is not None
    # The baseline's own validation: a trainperf benchmark id, a positive img/s, positive samples.
    doc = bl.Baseline(key, {name: bl.Entry(rates.img_per_s, rates.img_per_s_rounds)}).as_json()
    try:
        bl.parse(doc, Path(source))
    except bl.BaselineError as exc:
        raise RunError(str(exc)) from None
    spread = rates.img_per_s_spread
    if spread is not None and spread < 0:
        raise RunError(f"{source}: {name}: img_per_s_spread must be a non-negative number, got {spread!r}")
    return Throughput(record)


def load_run(path: Path) -> SavedRun:
    try:
        doc = bl.read_json(path, what="file")
    except bl.BaselineError as exc:
        raise RunError(str(exc)) from None
    return parse_run(doc, str(path))


def add_scaling(benchmarks: list[Any]) -> None:
    """Fill in each data-parallel result's scaling efficiency (against the smallest world size of its case in
    this run) in the benchmarks of a run about to be saved, whatever order the cases ran in."""
    found = [
        (bench, from_extra_info(bench["extra_info"]))
        for bench in benchmarks
        if isinstance(bench, dict) and is_result(bench.get("extra_info"))
    ]
    scaled = with_scaling([record for _, record in found])
    for (bench, before), after in zip(found, scaled, strict=True):
        if after is not before:
            bench["extra_info"] = after.to_extra_info()
