"""``trainperf report --format github-action-benchmark | bencher``: img/s as bigger-is-better JSON in each tool's
documented shape, and the workflow examples that use them (docs/exports.md).

The shapes, as the tools document them:

- github-action-benchmark, ``tool: customBiggerIsBetter``: a JSON array of objects with ``name`` (string),
  ``unit`` (string) and ``value`` (number), and optionally ``range`` and ``extra`` (strings).
- Bencher Metric Format: a JSON object from benchmark name to an object from measure (here the built-in
  ``throughput``) to a metric object with ``value`` (number) and optionally ``lower_value`` and ``upper_value``
  (numbers).
"""

from __future__ import annotations

import copy
import json
import math
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainperf import cli
from trainperf import report as rp
from trainperf.gate import verdict_report as vr
from trainperf.gate.verdict import Comparison
from trainperf.report import exports
from trainperf.results import CompileTime, DdpStep, Distributed, Identity, Rates, TrainStep

ROOT = Path(__file__).parent.parent
DATA = ROOT / "tests" / "data" / "report"
CPU_RUN = DATA / "cpu_run.json"  # a real default CPU run: loaders, train step, epoch
CUDA_RUN = DATA / "synthetic_cuda_run.json"
HISTORY = DATA / "history"
EXAMPLES = ROOT / "docs" / "examples"
DDP = "cpu-eager-fp32-contiguous-resnet18-b32-foreach"
GAB_KEYS = {"name", "unit", "value", "range", "extra"}
GAB_REQUIRED = {"name", "unit", "value"}
BMF_KEYS = {"value", "lower_value", "upper_value"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _ddp(size: int, rate: float, rounds: tuple[float, ...]) -> dict[str, Any]:
    step = TrainStep(
        identity=Identity(case_id=f"{DDP}-ws{size}"),
        throughput=Rates(img_per_s=rate, img_per_s_rounds=rounds, img_per_s_spread=0.02, noisy=size == 2),
        step_ms=32 * size / rate * 1e3,
    )
    record = DdpStep.of(step, Distributed(world_size=size, distributed_group=DDP))
    return {"name": f"test_ddp_train_step[{DDP}-ws{size}]", "extra_info": record.to_extra_info()}


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    """The real CPU run plus two data-parallel steps and a compile-time result, built from result records."""
    run = json.loads(CPU_RUN.read_text(encoding="utf-8"))
    template = run["benchmarks"][0]
    compile_time = CompileTime(identity=Identity(case_id="cpu-default-x"), compile_cold_s=40.0, compile_warm_s=9.0)
    added = [
        _ddp(1, 198.1, (190.0, 198.1, 205.5)),
        _ddp(2, 304.2, (280.0, 304.2, 311.0)),
        {"name": "test_compile_time[cpu-default-x]", "extra_info": compile_time.to_extra_info()},
    ]
    run["benchmarks"] += [{**copy.deepcopy(template), **b} for b in added]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run), encoding="utf-8")
    return path


def _expected(path: Path) -> dict[str, tuple[float, float, float]]:
    """Benchmark name -> (median img/s, slowest round, fastest round), read from the file itself."""
    out = {}
    for bench in json.loads(path.read_text(encoding="utf-8"))["benchmarks"]:
        info = bench["extra_info"]
        if info["trainperf_kind"] != "compile_time":
            rounds = info["img_per_s_rounds"]
            out[bench["name"]] = (info["img_per_s"], min(rounds), max(rounds))
    return out


def _cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_github_action_benchmark(doc: Any) -> None:
    """``doc`` is a customBiggerIsBetter file: nothing but the documented keys, of the documented types."""
    assert isinstance(doc, list) and doc
    for entry in doc:
        assert isinstance(entry, dict), entry
        assert GAB_REQUIRED <= set(entry) <= GAB_KEYS, sorted(entry)
        assert isinstance(entry["name"], str) and entry["name"]
        assert entry["unit"] == "img/s"
        assert _number(entry["value"]) and entry["value"] > 0
        assert all(isinstance(entry[k], str) for k in ("range", "extra") if k in entry)
    names = [e["name"] for e in doc]
    assert len(set(names)) == len(names)


def assert_bencher(doc: Any) -> None:
    """``doc`` is Bencher Metric Format with the throughput measure only."""
    assert isinstance(doc, dict) and doc
    for name, measures in doc.items():
        assert isinstance(name, str) and 0 < len(name) <= 1024  # Bencher's limit on a benchmark name
        assert isinstance(measures, dict) and set(measures) == {"throughput"}
        metric = measures["throughput"]
        assert isinstance(metric, dict) and "value" in metric and set(metric) <= BMF_KEYS, metric
        assert all(_number(v) for v in metric.values())
        if "lower_value" in metric:
            assert metric["lower_value"] <= metric["value"] <= metric["upper_value"]


def test_github_action_benchmark_carries_every_throughput(capsys, run_file):
    code, out, err = _cli(capsys, "report", "--format", "github-action-benchmark", run_file)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert_github_action_benchmark(doc)
    expected = _expected(run_file)
    # train step, epoch, the loaders and both DDP world sizes, in the run's order; compile time has no img/s
    assert [e["name"] for e in doc] == list(expected)
    assert {"test_ddp_train_step[" + DDP + "-ws2]", "test_dataloader[cpu-resident]"} <= set(expected)
    for entry in doc:
        median, low, high = expected[entry["name"]]
        assert entry["value"] == median
        assert entry["range"] == f"rounds min {low:.1f}, max {high:.1f}"
    ws2 = next(e for e in doc if e["name"].endswith("-ws2]"))
    assert (
        "kind: ddp_train_step" in ws2["extra"]
        and "NOISY" in ws2["extra"]
        and "spread (IQR/median): 2.0%" in ws2["extra"]
    )


def test_bencher_carries_every_throughput(capsys, run_file):
    code, out, err = _cli(capsys, "report", "--format", "bencher", run_file)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert_bencher(doc)
    expected = _expected(run_file)
    assert list(doc) == list(expected)
    for name, (median, low, high) in expected.items():
        assert doc[name] == {"throughput": {"value": median, "lower_value": low, "upper_value": high}}


@pytest.mark.parametrize("fmt", rp.EXPORTS)
def test_output_file_instead_of_stdout(capsys, run_file, tmp_path, fmt):
    target = tmp_path / "export.json"
    code, out, err = _cli(capsys, "report", run_file, "--format", fmt, "-o", target)
    assert (code, out, err) == (0, "", "")
    doc = json.loads(target.read_text(encoding="utf-8"))
    (assert_github_action_benchmark if fmt == "github-action-benchmark" else assert_bencher)(doc)
    code, out, err = _cli(capsys, "report", run_file, "--format", fmt, "-o", tmp_path / "no" / "dir" / "x.json")
    assert code == 2 and out == "" and "cannot write the report" in err and err.count("\n") == 1


def test_output_file_takes_every_format(capsys, tmp_path):
    target = tmp_path / "summary.txt"
    assert _cli(capsys, "report", CPU_RUN, "--format", "summary", "--output", target) == (0, "", "")
    assert target.read_text(encoding="utf-8") == _cli(capsys, "report", CPU_RUN, "--format", "summary")[1]


def test_a_run_without_rounds_has_no_range():
    record = TrainStep(identity=Identity(case_id="cpu-x"), throughput=Rates(img_per_s=10.0, img_per_s_rounds=()))
    run = rp.Run(Path("r.json"), datetime.now(UTC), {}, "k", {}, (rp.Benchmark("t[cpu-x]", record),))
    machine = rp.Machine("k", "k", (run,))
    (entry,) = exports.github_action_benchmark([machine])
    assert entry == {
        "name": "t[cpu-x]",
        "unit": "img/s",
        "value": 10.0,
        "extra": "kind: train_step\nmachine: k\nrounds: 0",
    }
    assert exports.bencher([machine]) == {"t[cpu-x]": {"throughput": {"value": 10.0}}}


def test_several_machines_keep_apart(capsys):
    code, out, _ = _cli(capsys, "report", "--format", "bencher", HISTORY, CUDA_RUN)
    assert code == 0
    doc = json.loads(out)
    assert_bencher(doc)
    machines = rp.group_by_machine(rp.load_runs([HISTORY, CUDA_RUN]))
    step = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
    # the same test on two machines: two series, each named after its machine
    assert {f"{step} ({m.label})" for m in machines} <= set(doc)
    assert all(name.endswith(")") for name in doc)


def test_verdict_files_are_not_exported(capsys, tmp_path):
    verdict = tmp_path / "verdict.json"
    vr.write(verdict, vr.document([Comparison("t", "ok")], mode="ab", machine_key="k", exit_code=0, notes=[]))
    code, out, err = _cli(capsys, "report", CPU_RUN, verdict, "--format", "bencher")
    assert (code, out) == (
        2,
        "",
    ) and err == f"trainperf report: {verdict}: a verdict file; --format bencher exports runs\n"


def _workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))


def _runs(doc: dict[str, Any]) -> list[str]:
    """Every command of the workflow's steps, continuation lines joined."""
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    text = "\n".join(s.get("run", "") for s in steps).replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _trainperf_report(doc: dict[str, Any], fmt: str) -> Path:
    """The workflow's ``trainperf report`` command, parsed by the real CLI: the format it names exists and the
    command line is valid; returns its output file."""
    (command,) = [c for c in _runs(doc) if c.startswith("trainperf report")]
    args = cli._parser().parse_args(shlex.split(command)[1:])
    assert args.command == "report" and args.format == fmt and fmt in rp.FORMATS
    assert args.paths == [Path("out.json")] and args.output is not None
    return args.output


@pytest.mark.parametrize(
    ("example", "fmt"), [("github-action-benchmark.yml", "github-action-benchmark"), ("bencher.yml", "bencher")]
)
def test_the_example_workflows_run_the_suite_and_export(example, fmt):
    doc = _workflow(example)
    assert "pytest perf/ -m cpu --benchmark-json=out.json" in _runs(doc)
    output = _trainperf_report(doc, fmt)
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    if fmt == "github-action-benchmark":
        (action,) = [s for s in steps if s.get("uses", "").startswith("benchmark-action/github-action-benchmark@")]
        assert action["uses"] == "benchmark-action/github-action-benchmark@v1"
        assert action["with"]["tool"] == "customBiggerIsBetter"
        assert Path(action["with"]["output-file-path"]) == output
    else:
        (command,) = [c for c in _runs(doc) if c.startswith("bencher run")]
        words = shlex.split(command)
        assert words[words.index("--adapter") + 1] == "json" and Path(words[words.index("--file") + 1]) == output
        assert words[words.index("--threshold-measure") + 1] == exports.BENCHER_MEASURE
        assert "--threshold-lower-boundary" in words  # throughput regresses downwards
        assert any(s.get("uses", "").startswith("bencherdev/bencher@") for s in steps)
