"""Baseline files: validation, atomic writes, merging; and the machine key."""

from __future__ import annotations

import json
import os

import pytest

from trainperf.gate import baseline as bl
from trainperf.machine.key import machine_key


def _doc(version=2, **benchmarks):
    return {
        "schema": bl.SCHEMA,
        "schema_version": version,
        "machine_key": "cpu-x-2c-torch2.14",
        "benchmarks": benchmarks,
    }


def _entry(img=100.0, samples=(99.0, 100.0, 101.0), **extra):
    return {"img_per_s": img, "samples": list(samples), **extra}


A = "test_a[cpu-w0-nopin]"
B = "test_b[cpu-resident]"
C = "test_c[cuda-w2-pin]"


def test_round_trip_keeps_the_runs(tmp_path):
    path = tmp_path / "k.json"
    raw = _entry(runs=[98.0, 100.0, 102.0], tolerance=0.1, provenance={"commit": "abc"})
    original = bl.parse(_doc(**{A: raw}), path)
    assert original.entries[A].runs == (98.0, 100.0, 102.0) == original.entries[A].run_medians
    bl.write_atomic(path, original)
    again = bl.load(path)
    assert again == original
    assert again.entries[A].tolerance == 0.1 and again.entries[A].runs == (98.0, 100.0, 102.0)
    written = json.loads(path.read_text())
    assert written["schema_version"] == bl.SCHEMA_VERSION == 2
    assert written["benchmarks"][A]["runs"] == [98.0, 100.0, 102.0]
    assert written["benchmarks"][A]["provenance"] == {"commit": "abc"}


def test_the_machines_speed_probes_round_trip_and_a_merge_replaces_them_only_when_given(tmp_path):
    path = tmp_path / "k.json"
    original = bl.parse({**_doc(**{A: _entry()}), "machine_speed": [900.0, 910.0]}, path)
    assert original.machine_speed == (900.0, 910.0)
    bl.write_atomic(path, original)
    assert bl.load(path).machine_speed == (900.0, 910.0) == tuple(json.loads(path.read_text())["machine_speed"])
    new = {B: bl.Entry(50.0, (50.0,))}
    assert bl.merge(original, original.machine_key, new)[0].machine_speed == (900.0, 910.0)
    assert bl.merge(original, original.machine_key, new, machine_speed=(700.0,))[0].machine_speed == (700.0,)
    assert "machine_speed" not in bl.parse(_doc(**{A: _entry()}), path).as_json()  # older files: none


def test_schema_1_loads_as_one_run(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(_doc(1, **{A: _entry(img=123.0)})))
    entry = bl.load(path).entries[A]
    assert entry.runs == () and entry.run_medians == (123.0,)
    assert entry.samples == (99.0, 100.0, 101.0)
    # Written again, it is a schema 2 file whose one run is the old median.
    bl.write_atomic(path, bl.load(path))
    assert json.loads(path.read_text())["schema_version"] == 2
    assert bl.load(path).entries[A].run_medians == (123.0,)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "expected a JSON object"),
        ({"schema": "x"}, "not a trainperf baseline"),
        ({**_doc(), "schema_version": "1"}, "schema_version must be an integer"),
        ({**_doc(), "schema_version": True}, "schema_version must be an integer"),
        ({**_doc(), "schema_version": 3}, "schema_version 3 is newer than this trainperf understands (2)"),
        ({**_doc(), "schema_version": 0}, "schema_version 0 is not a valid version"),
        ({**_doc(), "machine_key": ""}, "machine_key must be a non-empty string"),
        ({**_doc(), "default_tolerance": 1.5}, "default_tolerance must be a fraction"),
        ({**_doc(), "benchmarks": []}, "'benchmarks' must be an object"),
        (_doc(**{"not an id!": _entry()}), "is not a trainperf benchmark id"),
        (_doc(**{"test_train_step": _entry()}), "is not a trainperf benchmark id"),
        (_doc(**{"test_train_step[cpu-eagr-fp32-contiguous-m-b8-fused]": _entry()}), "is not a trainperf benchmark id"),
        (_doc(**{A: 5}), f"entry {A} must be an object"),
        (_doc(**{A: _entry(img=0)}), f"entry {A}: img_per_s must be a positive number"),
        (_doc(**{A: _entry(img=float("nan"))}), "img_per_s must be a positive number"),
        (_doc(**{A: _entry(img=True)}), "img_per_s must be a positive number"),
        (_doc(**{A: _entry(samples=())}), "samples must be a non-empty list"),
        (_doc(**{A: _entry(samples=(1.0, -2.0))}), "samples must be a non-empty list"),
        (_doc(**{A: _entry(runs=100.0)}), f"entry {A}: runs must be a list of positive img/s values"),
        (_doc(**{A: _entry(runs=[100.0, 0])}), f"entry {A}: runs must be a list of positive img/s values"),
        (_doc(**{A: _entry(runs=[100.0, "fast"])}), f"entry {A}: runs must be a list"),
        (_doc(1, **{A: _entry(runs=[float("inf")])}), f"entry {A}: runs must be a list"),
        (_doc(**{A: _entry(tolerance=0)}), "tolerance must be a fraction"),
        (_doc(**{A: _entry(provenance=[])}), "provenance must be an object"),
        ({**_doc(), "machine_speed": [900.0, 0]}, "machine_speed must be a list of positive numbers"),
        ({**_doc(), "machine_speed": 900.0}, "machine_speed must be a list of positive numbers"),
    ],
)
def test_invalid_documents_name_the_file_and_problem(tmp_path, doc, fragment):
    path = tmp_path / "bad.json"
    with pytest.raises(bl.BaselineError) as info:
        bl.parse(doc, path)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(bl.BaselineError, match="no such baseline file"):
        bl.load(tmp_path / "absent.json")
    truncated = tmp_path / "t.json"
    truncated.write_text('{"schema": "trainperf-baseline", "benchm')
    with pytest.raises(bl.BaselineError, match=r"not valid JSON \(.* at line 1 column"):
        bl.load(truncated)
    with pytest.raises(bl.BaselineError, match="cannot read"):
        bl.load(tmp_path)  # a directory
    utf16 = tmp_path / "u.json"
    utf16.write_text(json.dumps(_doc()), encoding="utf-16")  # what PowerShell's > writes
    with pytest.raises(bl.BaselineError, match="not UTF-8 text"):
        bl.load(utf16)


def test_write_refuses_missing_or_read_only_directory(tmp_path, monkeypatch):
    empty = bl.Baseline("k", {})
    with pytest.raises(bl.BaselineError, match="baseline directory does not exist"):
        bl.write_atomic(tmp_path / "nope" / "k.json", empty)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root ignores permission bits
    with pytest.raises(bl.BaselineError, match="baseline directory is not writable"):
        bl.write_atomic(tmp_path / "k.json", empty)


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "k.json"
    old = bl.parse(_doc(**{A: _entry()}), path)
    bl.write_atomic(path, old)
    before = path.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        bl.write_atomic(path, bl.Baseline("k", {}))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]  # no temporary file left


def test_merge_keeps_what_did_not_run_and_carries_tolerances():
    old = bl.Baseline(
        "k",
        {A: bl.Entry(100.0, (100.0,), tolerance=0.2, runs=(99.0, 101.0)), B: bl.Entry(50.0, (50.0,))},
        default_tolerance=0.07,
    )
    new, changes = bl.merge(old, "k", {A: bl.Entry(110.0, (110.0,), runs=(110.0,)), C: bl.Entry(5.0, (5.0,))})
    assert set(new.entries) == {A, B, C}
    # Without accumulate the new runs replace the old ones.
    assert new.entries[A].img_per_s == 110.0 and new.entries[A].runs == (110.0,)
    assert new.entries[A].tolerance == 0.2 and new.entries[B] == old.entries[B]
    assert new.default_tolerance == 0.07
    assert changes.added == (C,) and changes.kept == (B,)
    assert changes.lines() == [
        "added 1, updated 1, kept 1 not run",
        f"  + {C}",
        f"  ~ {A}: 100.0 -> 110.0 img/s (+10.0%)",
    ]


def test_merge_with_its_own_tolerance_keeps_it():
    old = bl.Baseline("k", {A: bl.Entry(100.0, (100.0,), tolerance=0.2)})
    new, _ = bl.merge(old, "k", {A: bl.Entry(100.0, (100.0,), tolerance=0.03)})
    assert new.entries[A].tolerance == 0.03


def test_merge_accumulates_the_newest_runs():
    old = bl.Baseline("k", {A: bl.Entry(100.0, (100.0,), tolerance=0.2, runs=(90.0, 100.0, 110.0))})
    recorded = bl.entry_from_runs([(120.0, (119.0, 121.0)), (130.0, (129.0, 131.0))], {"commit": "abc"})
    new, changes = bl.merge(old, "k", {A: recorded}, accumulate=3)
    entry = new.entries[A]
    assert entry.runs == (110.0, 120.0, 130.0)
    assert entry.img_per_s == pytest.approx((110.0 * 120.0 * 130.0) ** (1 / 3))
    assert entry.samples == (129.0, 131.0) and entry.tolerance == 0.2
    assert entry.provenance == {"commit": "abc"}
    assert changes.updated == ((A, 100.0, entry.img_per_s),)
    # A schema 1 entry counts as one run; a new benchmark has nothing to accumulate with.
    old = bl.Baseline("k", {A: bl.Entry(100.0, (100.0,))})
    new, changes = bl.merge(old, "k", {A: recorded, C: recorded}, accumulate=10)
    assert new.entries[A].runs == (100.0, 120.0, 130.0) and new.entries[C].runs == (120.0, 130.0)
    assert new.entries[C].img_per_s == pytest.approx((120.0 * 130.0) ** 0.5)
    assert changes.added == (C,)
    # A new benchmark recorded with more runs than accumulate keeps the newest, and its centre is theirs.
    many = bl.entry_from_runs([(m, (m,)) for m in (50.0, 120.0, 130.0, 140.0)], {})
    new, changes = bl.merge(None, "k", {C: many}, accumulate=3)
    assert new.entries[C].runs == (120.0, 130.0, 140.0) and changes.added == (C,)
    assert new.entries[C].img_per_s == pytest.approx((120.0 * 130.0 * 140.0) ** (1 / 3))
    assert new.entries[C].samples == (140.0,)


def test_merge_into_nothing():
    new, changes = bl.merge(None, "k", {A: bl.Entry(100.0, (100.0,))}, accumulate=3)
    assert new.machine_key == "k" and set(new.entries) == {A} and new.default_tolerance is None
    assert changes.added == (A,) and changes.updated == () and changes.kept == ()
    # A schema 1 entry (one run, no "runs") comes out as that one run, written explicitly; its centre is itself.
    entry = new.entries[A]
    assert entry.run_medians == pytest.approx((100.0,)) and entry.runs == entry.run_medians
    assert entry.img_per_s == pytest.approx(100.0) and entry.samples == (100.0,) and entry.tolerance is None
    # Without accumulate the entry is taken as it is.
    plain, _ = bl.merge(None, "k", {A: bl.Entry(100.0, (100.0,))})
    assert plain == bl.Baseline("k", {A: bl.Entry(100.0, (100.0,))})


def test_entry_from_runs():
    entry = bl.entry_from_runs([(100.0, (99.0,)), (400.0, (401.0, 399.0))], {"commit": "abc"})
    assert entry.runs == (100.0, 400.0) and entry.img_per_s == pytest.approx(200.0)
    assert entry.samples == (401.0, 399.0) and entry.provenance == {"commit": "abc"} and entry.tolerance is None


def test_machine_key_recipe():
    gpu = {
        "torch": "2.11.0+cu128",
        "cuda_available": True,
        "gpu_name": "NVIDIA H200",
        "cuda_runtime": "12.8",
        "cpu_model": "AMD EPYC 9654",
        "cpu_count": 192,
        "driver": "570.1",
    }
    assert machine_key(gpu) == "cuda-nvidia-h200-torch2.11-cuda12.8"
    assert machine_key({**gpu, "driver": "580.2", "torch": "2.11.3"}) == machine_key(gpu)  # not in the key
    cpu = {
        "torch": "2.14.1+cpu",
        "cuda_available": False,
        "cpu_model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        "cpu_count": 16,
    }
    assert machine_key(cpu) == "cpu-intel-xeon-gold-6338-16c-torch2.14"
    assert machine_key({**cpu, "cpu_count": 8}) != machine_key(cpu)
    assert machine_key({"torch": "2.9.0", "mps_available": True, "cpu_model": "Apple M3"}) == "mps-apple-m3-torch2.9"
