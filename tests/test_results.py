"""The result record: every kind round-trips through extra_info, runs saved by older versions read the same,
a newer or malformed result is an error naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainperf import results as r
from trainperf.machine.load import MachineLoad

DATA = Path(__file__).parent / "data" / "report"
IDENTITY = r.Identity(case_id="cpu-x", config={"model": "m"}, machine_load=MachineLoad(0.1, 0.0, 3.0))
RATES = r.Rates(img_per_s=100.0, img_per_s_rounds=(99.0, 100.0, 101.0), img_per_s_spread=0.01, noisy=False)


def _records() -> list[r.Result]:
    health = r.Health(loss_first=2.3, loss_last=2.1, compilation=r.Compilation(graphs=1, recompiles_in_rounds=0))
    step = r.TrainStep(identity=IDENTITY, throughput=RATES, step_ms=3.5, window_s_rounds=(0.5, 0.5), health=health)
    return [
        step,
        r.DdpStep(identity=IDENTITY, throughput=RATES, distributed=r.Distributed(world_size=2, launch_s=9.0)),
        r.Epoch(identity=IDENTITY, throughput=RATES, epoch_s=1.5, utilisation=r.Utilisation(mfu=0.4)),
        r.Loader(identity=IDENTITY, throughput=RATES, images_per_round=512),
        r.CompileTime(identity=IDENTITY, compile_cold_s=30.0, compile_warm_s=3.0),
    ]


@pytest.mark.parametrize("record", _records(), ids=lambda rec: rec.kind)
def test_every_kind_round_trips_through_json(record):
    stored = json.loads(json.dumps(record.to_extra_info()))
    assert stored["trainperf_kind"] == record.kind and stored["trainperf_result_version"] == r.RESULT_VERSION
    assert r.from_extra_info(stored) == record


def test_parts_are_flat_and_the_machine_load_nested():
    stored = _records()[0].to_extra_info()
    assert stored["img_per_s"] == 100.0 and stored["img_per_s_rounds"] == [99.0, 100.0, 101.0]
    assert stored["case_id"] == "cpu-x" and stored["loss_last"] == 2.1 and stored["graphs"] == 1
    assert stored["machine_load"] == {"others": 0.1, "steal": 0.0, "seconds": 3.0}
    assert "mfu" not in stored  # an absent part writes nothing


def test_runs_saved_before_the_record_read_the_same_and_write_back_every_key():
    count = 0
    for path in DATA.rglob("*.json"):
        doc = json.loads(path.read_text())
        for bench in doc.get("benchmarks", []) if isinstance(doc, dict) else []:
            extra = bench.get("extra_info") if isinstance(bench, dict) else None
            if not r.is_result(extra):
                continue
            count += 1
            record = r.from_extra_info(extra)
            assert record.kind == extra["trainperf_kind"] and record.case_id == extra["case_id"]
            back = record.to_extra_info()
            assert {k: back[k] for k in extra} == extra, path
    assert count >= 20


def test_a_newer_kind_or_key_is_kept_and_written_back():
    extra = {"trainperf_kind": "tokens", "case_id": "c", "tokens_per_s": 5.0, "img_per_s": 1.0}
    record = r.from_extra_info(extra)
    assert isinstance(record, r.Other) and record.kind == "tokens" and record.rates is None
    back = record.to_extra_info()
    assert {k: back[k] for k in extra} == extra and back["trainperf_result_version"] == r.RESULT_VERSION
    step = r.from_extra_info({**_records()[0].to_extra_info(), "new_field": [1]})
    assert step.unknown == {"new_field": [1]} and step.to_extra_info()["new_field"] == [1]


def test_a_result_without_a_case_id_takes_the_parameter_id():
    extra = {k: v for k, v in _records()[3].to_extra_info().items() if k != "case_id"}
    assert r.from_extra_info(extra, case_id="cpu-w0").case_id == "cpu-w0"
    with pytest.raises(r.ResultError, match="case_id is missing"):
        r.from_extra_info(extra)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trainperf_result_version": 99}, "trainperf_result_version 99: this trainperf reads up to 1"),
        ({"img_per_s": "fast"}, "img_per_s must be a number or null, got 'fast'"),
        ({"img_per_s_rounds": [1, "x"]}, "img_per_s_rounds must be a list of numbers"),
        ({"config": []}, "config must be an object"),
        ({"trainperf_kind": 3}, "trainperf_kind is missing or not a string"),
    ],
)
def test_a_malformed_result_names_the_key(change, message):
    with pytest.raises(r.ResultError, match=message.replace("(", r"\(")):
        r.from_extra_info({**_records()[0].to_extra_info(), **change})


def test_a_throughput_kind_without_its_numbers_is_an_error():
    extra = {"trainperf_kind": "train_step", "case_id": "c"}
    with pytest.raises(r.ResultError, match="img_per_s is missing"):
        r.from_extra_info(extra)
