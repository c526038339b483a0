"""Baseline files: validation, atomic writes, merging; and the machine key."""

from __future__ import annotations

import json
import os

import pytest

from trainperf import baseline as bl
from trainperf.machine_key import machine_key


def _doc(**benchmarks):
    return {"schema": bl.SCHEMA, "schema_version": 1, "machine_key": "cpu-x-2c-torch2.14", "benchmarks": benchmarks}


def _entry(img=100.0, samples=(99.0, 100.0, 101.0), **extra):
    return {"img_per_s": img, "samples": list(samples), **extra}


def test_round_trip(tmp_path):
    path = tmp_path / "k.json"
    original = bl.parse(_doc(**{"test_a[cpu-w0-nopin]": _entry(tolerance=0.1, provenance={"commit": "abc"})}), path)
    bl.write_atomic(path, original)
    again = bl.load(path)
    assert again == original
    assert again.entries["test_a[cpu-w0-nopin]"].tolerance == 0.1
    assert json.loads(path.read_text())["benchmarks"]["test_a[cpu-w0-nopin]"]["provenance"] == {"commit": "abc"}


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "expected a JSON object"),
        ({"schema": "x"}, "not a trainperf baseline"),
        ({**_doc(), "schema_version": "1"}, "schema_version must be an integer"),
        ({**_doc(), "schema_version": 2}, "newer than this trainperf understands"),
        ({**_doc(), "schema_version": 0}, "not a valid version"),
        ({**_doc(), "machine_key": ""}, "machine_key must be a non-empty string"),
        ({**_doc(), "default_tolerance": 1.5}, "default_tolerance must be a fraction"),
        ({**_doc(), "benchmarks": []}, "'benchmarks' must be an object"),
        (_doc(**{"not an id!": _entry()}), "is not a trainperf benchmark id"),
        (_doc(**{"test_train_step": _entry()}), "is not a trainperf benchmark id"),
        (_doc(**{"test_train_step[cpu-eagr-fp32-contiguous-m-b8-fused]": _entry()}), "is not a trainperf benchmark id"),
        (_doc(**{"test_a[cpu-w0-nopin]": 5}), "entry test_a[cpu-w0-nopin] must be an object"),
        (_doc(**{"test_a[cpu-w0-nopin]": _entry(img=0)}), "img_per_s must be a positive number"),
        (_doc(**{"test_a[cpu-w0-nopin]": _entry(img=float("nan"))}), "img_per_s must be a positive number"),
        (_doc(**{"test_a[cpu-w0-nopin]": _entry(img=True)}), "img_per_s must be a positive number"),
        (_doc(**{"test_a[cpu-w0-nopin]": _entry(samples=())}), "samples must be a non-empty list"),
        (_doc(**{"test_a[cpu-w0-nopin]": _entry(samples=(1.0, -2.0))}), "samples must be a non-empty list"),
        (_doc(**{"test_a[cpu-w0-nopin]": _entry(tolerance=0)}), "tolerance must be a fraction"),
        (_doc(**{"test_a[cpu-w0-nopin]": _entry(provenance=[])}), "provenance must be an object"),
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
    old = bl.parse(_doc(**{"test_a[cpu-w0-nopin]": _entry()}), path)
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
        {
            "test_a[cpu-w0-nopin]": bl.Entry(100.0, (100.0,), tolerance=0.2),
            "test_b[cpu-resident]": bl.Entry(50.0, (50.0,)),
        },
        default_tolerance=0.07,
    )
    new, changes = bl.merge(
        old, "k", {"test_a[cpu-w0-nopin]": bl.Entry(110.0, (110.0,)), "test_c[cuda-w2-pin]": bl.Entry(5.0, (5.0,))}
    )
    assert set(new.entries) == {"test_a[cpu-w0-nopin]", "test_b[cpu-resident]", "test_c[cuda-w2-pin]"}
    assert (
        new.entries["test_a[cpu-w0-nopin]"].img_per_s == 110.0 and new.entries["test_a[cpu-w0-nopin]"].tolerance == 0.2
    )
    assert new.default_tolerance == 0.07
    assert changes.added == ("test_c[cuda-w2-pin]",) and changes.kept == ("test_b[cpu-resident]",)
    assert changes.lines() == [
        "added 1, updated 1, kept 1 not run",
        "  + test_c[cuda-w2-pin]",
        "  ~ test_a[cpu-w0-nopin]: 100.0 -> 110.0 img/s (+10.0%)",
    ]


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
