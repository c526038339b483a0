"""Committed baselines: one JSON file per machine key, validated on read, written atomically.

JSON only (nothing on this path unpickles). Pure logic plus file I/O; no pytest.

Layout (schema_version 2)::

    {"schema": "trainperf-baseline", "schema_version": 2, "machine_key": "cpu-amd-epyc-2c-torch2.14",
     "default_tolerance": 0.05,                      # optional, for every benchmark of this file
     "benchmarks": {"test_train_step[cpu-...]": {
         "img_per_s": 616.3,                         # the centre of the runs (verdict.centre)
         "runs": [612.0, 620.1, 616.9],              # median img/s of independent runs (processes), oldest first
         "samples": [607.1, 626.1, ...],             # the rounds of the newest run
         "tolerance": 0.08,                          # optional, this benchmark only
         "provenance": {"commit": "...", "date": "...", "machine": {...}, "backend_flags": {...}, ...}}}}

A schema_version 1 file (one run's rounds, no "runs") still loads, as a reference of one run: the verdict then
assumes the default between-run noise.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainperf.gate.verdict import centre
from trainperf.measurement.cases import is_benchmark_param_id
from trainperf.results import Identity

SCHEMA = "trainperf-baseline"
SCHEMA_VERSION = 2
DEFAULT_KEEP_RUNS = 10  # runs an entry keeps when runs accumulate (the newest)
# A benchmark id is a test name with its parameter id: test_train_step[cpu-eager-...]
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\[([^\[\]\s]+)\]$")


class BaselineError(Exception):
    """A baseline file cannot be used: ``"<file>: <problem>; expected <what>"``. The parts are kept apart so the
    pytest edge can name the option that pointed at the file (``--benchmark-compare``) in its one style."""

    def __init__(self, path: Path | str, problem: str, expected: str) -> None:
        super().__init__(f"{path}: {problem}; expected {expected}")
        self.path, self.problem, self.expected = path, problem, expected


@dataclass(frozen=True)
class Entry:
    img_per_s: float
    samples: tuple[float, ...]
    tolerance: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    runs: tuple[float, ...] = ()  # median img/s of each independent run; () means the one run of ``samples``

    @property
    def run_medians(self) -> tuple[float, ...]:
        """The evidence of between-run noise: one median per independent run."""
        return self.runs or (self.img_per_s,)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "img_per_s": self.img_per_s,
            "runs": list(self.run_medians),
            "samples": list(self.samples),
        }
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance
        out["provenance"] = self.provenance
        return out


@dataclass(frozen=True)
class Baseline:
    machine_key: str
    entries: dict[str, Entry]
    default_tolerance: float | None = None
    # machine_speed.probe() after each recorded run: how fast the machine itself was when these numbers were made
    machine_speed: tuple[float, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "machine_key": self.machine_key}
        if self.default_tolerance is not None:
            out["default_tolerance"] = self.default_tolerance
        if self.machine_speed:
            out["machine_speed"] = list(self.machine_speed)
        out["benchmarks"] = {name: self.entries[name].as_json() for name in sorted(self.entries)}
        return out


_A_BASELINE = f"a JSON object with schema {SCHEMA!r}, as --trainperf-update-baselines writes"
_AN_ENTRY = "an object with img_per_s, runs and samples"


def baseline_path(directory: Path, key: str) -> Path:
    return directory / f"{key}.json"


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _tolerance(value: Any, where: str, path: Path) -> float | None:
    if value is None:
        return None
    if not _positive(value) or value >= 1:
        raise BaselineError(path, f"{where} must be a fraction, got {value!r}", "a number between 0 and 1 (0.05 = 5%)")
    return float(value)


def parse(doc: Any, path: Path) -> Baseline:
    """Validate a decoded baseline document; every problem is a BaselineError naming ``path``."""
    if not isinstance(doc, dict):
        raise BaselineError(path, f"not a trainperf baseline (a JSON {type(doc).__name__})", _A_BASELINE)
    if doc.get("schema") != SCHEMA:
        raise BaselineError(path, f"not a trainperf baseline (schema {doc.get('schema')!r})", _A_BASELINE)
    version = doc.get("schema_version")
    versions = f"schema_version 1 to {SCHEMA_VERSION}"
    if not isinstance(version, int) or isinstance(version, bool):
        raise BaselineError(path, f"schema_version must be an integer, got {version!r}", versions)
    if version > SCHEMA_VERSION:
        raise BaselineError(
            path,
            f"schema_version {version} is newer than this trainperf understands ({SCHEMA_VERSION})",
            f"{versions} (or upgrade trainperf)",
        )
    if version < 1:
        raise BaselineError(path, f"schema_version {version} is not a valid version", versions)
    key = doc.get("machine_key")
    if not isinstance(key, str) or not key:
        raise BaselineError(
            path, f"machine_key must be a non-empty string, got {key!r}", "the key the file is named after"
        )
    default_tolerance = _tolerance(doc.get("default_tolerance"), "default_tolerance", path)
    benchmarks = doc.get("benchmarks")
    if not isinstance(benchmarks, dict):
        raise BaselineError(
            path, f"'benchmarks' must be an object, got {type(benchmarks).__name__}", "benchmark id -> entry"
        )
    entries = {name: _entry(name, raw, path) for name, raw in benchmarks.items()}
    speed = doc.get("machine_speed", [])
    if not isinstance(speed, list) or not all(_positive(v) for v in speed):
        raise BaselineError(
            path,
            f"machine_speed must be a list of positive numbers, got {speed!r}",
            "positive MiB/s values, like [912.4]",
        )
    return Baseline(key, entries, default_tolerance, tuple(float(v) for v in speed))


def _entry(name: str, raw: Any, path: Path) -> Entry:
    match = _ID.match(name)
    if not match or not is_benchmark_param_id(match.group(1)):
        raise BaselineError(
            path,
            f"{name!r} is not a trainperf benchmark id",
            "test_name[case-id], e.g. test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach] or "
            "test_dataloader[cuda-w4-pin]",
        )
    if not isinstance(raw, dict):
        raise BaselineError(path, f"entry {name} must be an object, got {type(raw).__name__}", _AN_ENTRY)
    img_per_s = raw.get("img_per_s")
    if not _positive(img_per_s):
        raise BaselineError(
            path, f"entry {name}: img_per_s must be a positive number, got {img_per_s!r}", "a number like 616.3"
        )
    samples = raw.get("samples")
    if not isinstance(samples, list) or not samples or not all(_positive(s) for s in samples):
        raise BaselineError(
            path,
            f"entry {name}: samples must be a non-empty list of positive img/s values, got {samples!r}",
            "the newest run's rounds, like [607.1, 626.1]",
        )
    runs = raw.get("runs", [])
    if not isinstance(runs, list) or not all(_positive(r) for r in runs):
        raise BaselineError(
            path,
            f"entry {name}: runs must be a list of positive img/s values, got {runs!r}",
            "one median per run, like [612.0, 620.1]",
        )
    provenance = raw.get("provenance", {})
    if not isinstance(provenance, dict):
        raise BaselineError(path, f"entry {name}: provenance must be an object", "an object (commit, date, machine)")
    return Entry(
        img_per_s=float(img_per_s),
        samples=tuple(float(s) for s in samples),
        tolerance=_tolerance(raw.get("tolerance"), f"entry {name}: tolerance", path),
        provenance=provenance,
        runs=tuple(float(r) for r in runs),
    )


def read_json(path: Path, *, what: str = "baseline file") -> Any:
    """Decode a UTF-8 JSON file; any problem is a BaselineError naming ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(path, f"no such {what}", f"the path of an existing {what}") from None
    except OSError as exc:
        raise BaselineError(path, f"cannot read ({exc.strerror or exc})", f"a readable {what}") from None
    except UnicodeDecodeError as exc:
        raise BaselineError(
            path, f"not UTF-8 text ({exc.reason} at byte {exc.start})", "UTF-8 text (save it as UTF-8)"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            path, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", f"a whole JSON {what}"
        ) from None


def load(path: Path) -> Baseline:
    """Read and validate one baseline file."""
    return parse(read_json(path), path)


def write_atomic(path: Path, baseline: Baseline) -> None:
    """Write via a temporary file in the same directory and a rename: readers (and a crash) see the old file
    or the new one, never half of one.

    The file gets the mode any new file gets (0666 less the umask: 0644 as git checks it out), not the 0600 of
    ``tempfile.mkstemp``: baselines are committed and read by other users, CI among them."""
    directory = path.parent
    if not directory.is_dir():
        raise BaselineError(
            directory, "baseline directory does not exist", "an existing directory (create it and commit it)"
        )
    if not os.access(directory, os.W_OK):
        raise BaselineError(directory, "baseline directory is not writable", "a directory this user can write to")
    text = json.dumps(baseline.as_json(), indent=2, sort_keys=False) + "\n"
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never another writer's file; 0o666 through the umask, exactly as open(path, "w") would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...]
    updated: tuple[tuple[str, float, float], ...]  # id, old img/s, new img/s
    kept: tuple[str, ...]

    def lines(self) -> list[str]:
        out = [f"added {len(self.added)}, updated {len(self.updated)}, kept {len(self.kept)} not run"]
        out += [f"  + {name}" for name in self.added]
        out += [f"  ~ {name}: {old:,.1f} -> {new:,.1f} img/s ({new / old - 1:+.1%})" for name, old, new in self.updated]
        return out


def merge(
    old: Baseline | None,
    key: str,
    current: dict[str, Entry],
    *,
    accumulate: int | None = None,
    machine_speed: tuple[float, ...] = (),
) -> tuple[Baseline, Changes]:
    """The baseline after recording ``current``: entries that did not run are kept, per-entry tolerances carry
    over to the new numbers. ``accumulate=N`` appends the new runs to an entry's older ones and keeps the newest
    N (history of the default branch); otherwise the new runs replace the old. ``machine_speed`` (the probe after
    each new run) replaces the old probes when given."""
    previous = dict(old.entries) if old else {}
    entries = dict(previous)
    added, updated = [], []
    for name, entry in current.items():
        before = previous.get(name)
        if before is None:
            added.append(name)
            if accumulate:
                runs = entry.run_medians[-accumulate:]
                entry = replace(entry, runs=runs, img_per_s=centre(runs))
        else:
            if accumulate:
                runs = (*before.run_medians, *entry.run_medians)[-accumulate:]
                entry = replace(entry, runs=runs, img_per_s=centre(runs))
            updated.append((name, before.img_per_s, entry.img_per_s))
            if entry.tolerance is None and before.tolerance is not None:
                entry = replace(entry, tolerance=before.tolerance)
        entries[name] = entry
    kept = tuple(sorted(set(previous) - set(current)))
    speed = machine_speed or (old.machine_speed if old else ())
    new = Baseline(key, entries, old.default_tolerance if old else None, speed)
    return new, Changes(tuple(sorted(added)), tuple(sorted(updated)), kept)


def provenance(commit: str | None, date: str | None, machine: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """What an entry records about where its numbers came from: commit, date, machine and the benchmark's own
    backend flags, settings and case (from its result record)."""
    return {"commit": commit, "date": date, "machine": machine, **identity.described()}


def entry_from_runs(runs: list[tuple[float, tuple[float, ...]]], provenance: dict[str, Any]) -> Entry:
    """One entry from independent runs, each (median img/s, rounds), oldest first."""
    medians = tuple(m for m, _ in runs)
    return Entry(img_per_s=centre(medians), samples=runs[-1][1], provenance=provenance, runs=medians)
