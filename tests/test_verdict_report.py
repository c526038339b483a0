"""Verdict files and tables: the JSON written by the gate and by ``trainperf ab``, read back by the report."""

from __future__ import annotations

import json

import pytest

from trainperf.gate import verdict_report as vr
from trainperf.gate.verdict import (
    INCONCLUSIVE,
    MISSING,
    NEW,
    REGRESSED,
    UNCONFIRMED,
    Comparison,
    compare,
    confirm,
    paired,
)

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
    header, rule, regressed, inconclusive = lines[:4]
    for column in ("#", "ref img/s", "current img/s", "change", "confirm", "threshold", "detectable", "noise", "runs"):
        assert column in header
    assert header.endswith("verdict") and set(rule) == {"-", " "}
    assert regressed.startswith("#1 ") and REGRESSED in regressed and "-20.0%" in regressed and "-5.0%" in regressed
    assert "6/1" in regressed and not regressed.endswith("*") and NAME not in regressed
    assert inconclusive.startswith("#2 ") and "-18.3%" in inconclusive and inconclusive.endswith("inconclusive *")
    assert lines[4].startswith("#3 ") and "2/2" in lines[4]
    assert lines[5].endswith(" missing") and lines[6].endswith(" new")
    # Under the table, per reference, each label's test id and verdict in full.
    assert lines[7:] == [
        "against baseline k.json:",
        f"#1  {NAME}: {REGRESSED}",
        f"#2  test_dataloader[cpu-w0-nopin]: {INCONCLUSIVE} (noise > tolerance)",
        f"#4  test_dataloader[cpu-w4-pin]: {MISSING}",
        "against A/B:",
        "#3  test_dataloader[cpu-w2-pin]: REGRESSED (noise > tolerance)",
        "against baseline:",
        f"#5  test_dataloader[cpu-resident]: {NEW}",
    ]


def test_table_of_nothing_says_so():
    assert vr.table_lines([]) == ["(no benchmarks compared)"]


def test_table_shows_the_confirmation():
    lines = vr.table_lines(_rows()[:1])
    assert lines[2].startswith("#1 ") and "not confirmed" in lines[2] and "-15.0%" in lines[2] and "+0.0%" in lines[2]
    assert lines[4] == f"#1  {NAME}: {UNCONFIRMED}"
    words = " ".join(vr.legend().split())
    assert "threshold" in words and "between-run noise" in words and "*: " in words
    assert all(len(line) <= vr.WIDTH for line in vr.legend().splitlines())


@pytest.mark.parametrize(
    ("fraction", "digits", "text"),
    [
        (0.001, 0, "0.1%"),  # the issue: a 0.1% limit printed as "0%"
        (0.001, 1, "0.1%"),
        (0.0004, 1, "0.04%"),
        (0.05, 1, "5.0%"),
        (0.77, 0, "77%"),
        (0.0, 1, "0.0%"),
        (-0.0004, 1, "-0.04%"),
        (1e-9, 1, "0.0000%"),  # at most four decimals
    ],
)
def test_small_fractions_keep_a_significant_digit(fraction, digits, text):
    assert vr.percent(fraction, digits=digits) == text


def test_a_tiny_threshold_is_not_printed_as_zero():
    row = Comparison(NAME, "ok", baseline=1000.0, current=999.9, change=-0.0001, tolerance=0.0004, threshold=0.0004)
    cells = vr.table_lines([row])[2].split()
    assert "-0.04%" in cells and "-0.0%" in cells  # the threshold keeps its digit; the measured change is 0.0%
