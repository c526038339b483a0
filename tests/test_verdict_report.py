"""Verdict files and tables: the JSON written by the gate and by ``trainperf ab``, read back by the report."""

from __future__ import annotations

import json

import pytest

from trainperf.gate import verdict_report as vr
from trainperf.gate.verdict import MISSING, NEW, REGRESSED, UNCONFIRMED, Comparison, compare, confirm, paired

NAME = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
# Six agreeing runs: the tolerance sets the threshold (five would leave 5.1% at alpha 0.02).
RUNS = [1000.0, 1010.0, 990.0, 1005.0, 995.0, 1000.0]


def _rows() -> list[Comparison]:
    first = compare(NAME, RUNS, [850.0], against="baseline k.json")
    return [
        confirm(first, RUNS, [850.0], [1000.0]),
        compare("test_dataloader[cpu-w0-nopin]", [1000.0], [920.0], against="baseline k.json"),
        paired("test_dataloader[cpu-w2-pin]", [100.0, 110.0], [80.0, 88.0]),
        Comparison("test_dataloader[cpu-w4-pin]", MISSING, baseline=500.0, against="baseline k.json"),
        Comparison("test_dataloader[cpu-resident]", NEW, current=700.0),
    ]


def test_round_trip_gives_equal_comparisons(tmp_path):
    rows = _rows()
    doc = vr.document(rows, mode="baseline", machine_key="k", exit_code=1, notes=["a note"])
    path = tmp_path / "out" / "verdict.json"
    vr.write(path, doc)
    assert [p.name for p in path.parent.iterdir()] == ["verdict.json"]  # no temporary file left
    again, meta = vr.parse(json.loads(path.read_text(encoding="utf-8")), str(path))
    assert again == rows
    assert again[0].verdict == UNCONFIRMED and again[0].runs == (6, 1) and again[3].runs is None
    assert meta == {
        "schema": vr.SCHEMA,
        "schema_version": vr.SCHEMA_VERSION,
        "mode": "baseline",
        "machine_key": "k",
        "exit_code": 1,
        "notes": ["a note"],
    }
    assert vr.is_verdict(doc) and not vr.is_verdict({"schema": "trainperf-baseline"}) and not vr.is_verdict([])


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ([], "not a trainperf verdict file"),
        ({"schema": "trainperf-baseline", "schema_version": 1}, "not a trainperf verdict file"),
        ({"schema": vr.SCHEMA, "schema_version": 2, "comparisons": []}, "verdict schema_version 2; this trainperf"),
        ({"schema": vr.SCHEMA, "comparisons": []}, "verdict schema_version None"),
        ({"schema": vr.SCHEMA, "schema_version": 1, "comparisons": {}}, "'comparisons' must be a list"),
        ({"schema": vr.SCHEMA, "schema_version": 1, "comparisons": [{"bogus": 1}]}, "'comparisons' must be a list"),
        ({"schema": vr.SCHEMA, "schema_version": 1, "comparisons": [{"name": "t"}]}, "a comparison is malformed"),
    ],
)
def test_parse_errors_name_the_source(doc, fragment):
    with pytest.raises(vr.VerdictFileError) as info:
        vr.parse(doc, "runs/verdict.json")
    assert str(info.value).startswith("runs/verdict.json: ") and fragment in str(info.value)


def test_write_replaces_atomically(tmp_path):
    path = tmp_path / "verdict.json"
    vr.write(path, vr.document([], mode="ab", machine_key="k", exit_code=0, notes=[]))
    vr.write(path, vr.document(_rows()[:1], mode="ab", machine_key="k", exit_code=0, notes=[]))
    assert len(vr.parse(json.loads(path.read_text(encoding="utf-8")), str(path))[0]) == 1


def test_table_shows_verdict_threshold_and_noise_warning():
    rows = [compare(NAME, RUNS, [800.0], against="baseline k.json"), *_rows()[1:]]
    lines = vr.table_lines(rows)
    header, regressed, inconclusive = lines[0], lines[1], lines[2]
    for column in ("benchmark", "against", "change", "confirm", "threshold", "detectable", "noise", "runs", "verdict"):
        assert column in header
    assert NAME in regressed and REGRESSED in regressed and "-20.0%" in regressed and "-5.0%" in regressed
    assert "6/1" in regressed and "(noise > tolerance)" not in regressed
    assert "-18.3%" in inconclusive and "inconclusive" in inconclusive and "(noise > tolerance)" in inconclusive
    assert "2/2" in lines[3] and MISSING in lines[4] and NEW in lines[5]
    assert len(lines) == 1 + len(rows)


def test_table_of_nothing_says_so():
    assert vr.table_lines([]) == ["(no benchmarks compared)"]


def test_table_shows_the_confirmation():
    line = vr.table_lines(_rows()[:1])[1]
    assert UNCONFIRMED in line and "-15.0%" in line and "+0.0%" in line
    assert "threshold" in vr.legend() and "between-run noise" in vr.legend()
