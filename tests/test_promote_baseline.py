"""scripts/promote_baseline.py: agreeing runs become the machine's baseline; anything else writes nothing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainperf import baseline as bl

SCRIPT = Path(__file__).parent.parent / "scripts" / "promote_baseline.py"
_spec = importlib.util.spec_from_file_location("promote_baseline", SCRIPT)
assert _spec is not None and _spec.loader is not None
promote = importlib.util.module_from_spec(_spec)
sys.modules["promote_baseline"] = promote  # dataclasses look their module up while the class is made
_spec.loader.exec_module(promote)

STEP = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
LOADER = "test_dataloader[cpu-w0-nopin]"
EPOCH = "test_epoch[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
KEY = "cpu-amd-epyc-2c-torch2.14"

# Per-round img/s of two default CPU runs on the 2-core development machine, a minute and a half apart: they agree
# under the gate's rule (train step -2.0%, p=0.07; loader w0 +4.2%, p=0.0004, inside the 5% tolerance).
RUN2 = {
    STEP: [638.549, 642.86, 623.246, 592.731, 595.581, 597.665, 612.105, 618.32, 608.788, 616.228],
    LOADER: [6513.104, 6535.415, 6651.738, 6556.141, 6514.95, 6542.569, 6655.015, 6784.613, 6795.459, 6683.514],
}
RUN3 = {
    STEP: [599.597, 604.232, 600.041, 547.613, 617.456, 596.759, 598.809, 608.001, 609.47, 600.019],
    LOADER: [6793.394, 6773.187, 6727.189, 6841.303, 6943.019, 6958.574, 6941.567, 6959.997, 6965.468, 6944.481],
}
MACHINE = {
    "version": "0.1.0",
    "python": "3.11.7",
    "torch": "2.14.1+cu130",
    "torchvision": "0.29.1+cu130",
    "cpu_model": "AMD EPYC",
    "cpu_count": 2,
    "torch_threads": 2,
    "cuda_available": False,
    "cuda_runtime": "13.0",
    "cudnn": 92400,
    "mps_available": False,
    "gpu_name": None,
    "gpu_count": 0,
    "driver": None,
}
FLAGS = {"cudnn_benchmark": True, "float32_matmul_precision": "high", "matmul_tf32": True, "cudnn_tf32": True}
SETTINGS = {"warmup_steps": 5, "rounds": 10, "window_s": 1.0, "seed": 0, "data_dir": None}


def scaled(run: dict[str, list[float]], factor: float) -> dict[str, list[float]]:
    return {name: [round(v * factor, 3) for v in rounds] for name, rounds in run.items()}


def benchmark(name: str, rounds: list[float], spread: float = 0.02) -> dict[str, Any]:
    ordered = sorted(rounds)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {
        "name": name,
        "group": None,
        "extra_info": {
            "trainperf_kind": name.split("[")[0].removeprefix("test_"),
            "config": {"device": "cpu", "batch_size": 128},
            "img_per_s": round(median, 3),
            "img_per_s_rounds": list(rounds),
            "img_per_s_spread": spread,
            "backend_flags": FLAGS,
            "settings": SETTINGS,
        },
        "stats": {"median": 1.0, "rounds": len(rounds)},
    }


def run_doc(
    rounds: dict[str, list[float]], *, machine: dict[str, Any] = MACHINE, commit: str = "86af292", **spreads: float
) -> dict[str, Any]:
    """A pytest-benchmark JSON document as the suite saves it, cut down to what the script reads."""
    benches = [benchmark(name, values, spreads.get(name.split("[")[0], 0.02)) for name, values in rounds.items()]
    # A compile-time benchmark carries no throughput: it must be left out, not rejected.
    benches.append({"name": "test_compile_time[cpu-default-fp32-contiguous-resnet18-b128-foreach]", "extra_info": {}})
    return {
        "machine_info": {"node": "vm", "trainperf": machine},
        "commit_info": {"id": commit, "dirty": False, "branch": "main"},
        "benchmarks": benches,
        "datetime": "2026-11-28T18:59:37.417577+00:00",
        "version": "5.3.1",
    }


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def baselines(tmp_path: Path) -> Path:
    directory = tmp_path / "baselines"
    directory.mkdir()
    return directory


def promote_runs(baselines: Path, *paths: Path, extra: tuple[str, ...] = ()) -> int:
    return promote.main(["--runs", *map(str, paths), "--baseline-dir", str(baselines), *extra])


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_agreeing_runs_record_the_median_run(tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture) -> None:
    runs = [
        write(tmp_path, "run-1.json", run_doc(RUN2, commit="aaa")),
        write(tmp_path, "run-2.json", run_doc(RUN3, commit="bbb")),
        write(tmp_path, "run-3.json", run_doc(scaled(RUN2, 1.01), commit="ccc")),
    ]
    assert promote_runs(baselines, *runs) == 0
    written = bl.load(baselines / f"{KEY}.json")
    assert written.machine_key == KEY
    assert set(written.entries) == {STEP, LOADER}
    # Train step: 614.2 (run 1) is the median of 600.0, 614.2 and 620.3 img/s; loader: run 3 (6670 of 6604..6942).
    step, loader = written.entries[STEP], written.entries[LOADER]
    assert step.samples == tuple(RUN2[STEP])
    assert loader.samples == tuple(scaled(RUN2, 1.01)[LOADER])
    assert step.provenance["commit"] == "aaa"
    assert loader.provenance["commit"] == "ccc"
    assert step.provenance["promoted_from_runs"] == 3
    assert step.provenance["machine"] == MACHINE
    assert step.provenance["backend_flags"] == FLAGS
    assert step.provenance["settings"] == SETTINGS
    assert step.provenance["config"] == {"device": "cpu", "batch_size": 128}
    assert step.provenance["date"] == "2026-11-28T18:59:37.417577+00:00"
    out = capsys.readouterr().out
    assert f"3 runs agree on 2 benchmarks of {KEY}" in out
    assert f"wrote {baselines / (KEY + '.json')}: added 2, updated 0, kept 0 not run" in out
    assert f"  + {STEP}" in out


def test_an_even_number_of_runs_records_the_slower_middle_run(tmp_path: Path, baselines: Path) -> None:
    runs = [write(tmp_path, "a.json", run_doc(RUN2)), write(tmp_path, "b.json", run_doc(RUN3))]
    assert promote_runs(baselines, *runs) == 0
    entries = bl.load(baselines / f"{KEY}.json").entries
    assert entries[STEP].samples == tuple(RUN3[STEP])  # 600.0 < 614.2 img/s
    assert entries[LOADER].samples == tuple(RUN2[LOADER])  # 6,604 < 6,942 img/s


def test_promotion_merges_into_the_committed_file(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture
) -> None:
    old = bl.Baseline(
        KEY,
        {
            STEP: bl.Entry(700.0, (700.0, 701.0, 699.0), tolerance=0.08, provenance={"commit": "old"}),
            EPOCH: bl.Entry(500.0, (500.0, 501.0, 499.0), provenance={"commit": "old"}),
        },
        default_tolerance=0.07,
    )
    bl.write_atomic(baselines / f"{KEY}.json", old)
    runs = [write(tmp_path, "a.json", run_doc(RUN2)), write(tmp_path, "b.json", run_doc(RUN3))]
    assert promote_runs(baselines, *runs) == 0
    new = bl.load(baselines / f"{KEY}.json")
    assert new.default_tolerance == 0.07
    assert new.entries[EPOCH] == old.entries[EPOCH]  # not run: kept as it was
    assert new.entries[STEP].tolerance == 0.08  # the file's tolerance carries over
    assert new.entries[STEP].samples == tuple(RUN3[STEP])
    out = capsys.readouterr().out
    assert "added 1, updated 1, kept 1 not run" in out
    assert f"  ~ {STEP}: 700.0 -> 600.0 img/s (-14.3%)" in out


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_a_run_20_percent_off_refuses_and_writes_nothing(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture, factor: float
) -> None:
    target = baselines / f"{KEY}.json"
    bl.write_atomic(target, bl.Baseline(KEY, {STEP: bl.Entry(616.3, (616.3, 610.0, 620.0))}))
    before = target.read_bytes()
    runs = [
        write(tmp_path, "run-1.json", run_doc(RUN2)),
        write(tmp_path, "run-2.json", run_doc(RUN3)),
        write(tmp_path, "odd.json", run_doc({STEP: scaled(RUN2, factor)[STEP], LOADER: RUN2[LOADER]})),
    ]
    assert promote_runs(baselines, *runs) == 1
    assert target.read_bytes() == before
    assert sorted(p.name for p in baselines.iterdir()) == [target.name]  # no temporary file left behind
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2, captured.err  # odd.json against each of the two others; nothing about the loader
    assert all(line.startswith(f"not promoted: {STEP}: ") and "odd.json" in line for line in lines)
    change = f"{factor - 1:+.1%}"
    assert any(f"vs {runs[0]}" in line and f"change {change}" in line for line in lines)


def test_a_noisy_run_refuses_unless_the_limit_allows_it(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = [
        write(tmp_path, "quiet.json", run_doc(RUN2)),
        write(tmp_path, "noisy.json", run_doc(RUN3, test_train_step=0.08)),
    ]
    assert promote_runs(baselines, *runs) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"not promoted: {STEP}: {runs[1]} spread 8.0% is above --max-spread 5.0%; rerun on a quiet machine")
    assert not list(baselines.iterdir())
    assert promote_runs(baselines, *runs, extra=("--max-spread", "0.1")) == 0


def test_a_tighter_tolerance_makes_close_runs_disagree(tmp_path: Path, baselines: Path) -> None:
    runs = [write(tmp_path, "a.json", run_doc(RUN2)), write(tmp_path, "b.json", run_doc(RUN3))]
    assert promote_runs(baselines, *runs, extra=("--tolerance", "0.03")) == 1  # the loader's +4.2% is significant
    assert promote_runs(baselines, *runs, extra=("--tolerance", "0.03", "--alpha", "0.0001")) == 0


def test_too_few_rounds_to_ever_disagree_refuses(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture
) -> None:
    short = {STEP: [600.0, 610.0]}
    runs = [write(tmp_path, "a.json", run_doc(short)), write(tmp_path, "b.json", run_doc(scaled(short, 0.5)))]
    assert promote_runs(baselines, *runs) == 1
    assert "2 vs 2 rounds" in one_error_line(capsys.readouterr().err)
    assert not list(baselines.iterdir())


def test_runs_of_different_machines_are_bad_input(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture
) -> None:
    other = {**MACHINE, "cpu_count": 4}
    runs = [write(tmp_path, "here.json", run_doc(RUN2)), write(tmp_path, "there.json", run_doc(RUN3, machine=other))]
    assert promote_runs(baselines, *runs) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(runs[1]) in line
    assert "'cpu-amd-epyc-4c-torch2.14'" in line
    assert f"'{KEY}'" in line
    assert not list(baselines.iterdir())


def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"benchmarks": "\xff"}')


def _no_trainperf_benchmarks(path: Path) -> None:
    doc = run_doc(RUN2)
    doc["benchmarks"] = [b for b in doc["benchmarks"] if "img_per_s_rounds" not in b["extra_info"]]
    path.write_text(json.dumps(doc), encoding="utf-8")


def _doc(change: Any) -> Any:
    def make(path: Path) -> None:
        doc = run_doc(RUN3)
        change(doc)
        path.write_text(json.dumps(doc), encoding="utf-8")

    return make


BAD_SECOND_RUN = {
    "missing file": (lambda path: None, "no such file"),
    "not JSON": (lambda path: path.write_text('{"benchmarks": [', encoding="utf-8"), "not valid JSON"),
    "not UTF-8": (_not_utf8, "not UTF-8"),
    "a baseline file": (
        lambda path: path.write_text(json.dumps({"schema": "trainperf-baseline", "benchmarks": {}}), encoding="utf-8"),
        "not pytest-benchmark output",
    ),
    "a JSON list": (lambda path: path.write_text("[]", encoding="utf-8"), "not pytest-benchmark output"),
    "no trainperf machine info": (_doc(lambda d: d["machine_info"].pop("trainperf")), "no machine_info.trainperf"),
    "no trainperf benchmarks": (_no_trainperf_benchmarks, "no trainperf throughput benchmark"),
    "a benchmark missing": (_doc(lambda d: d["benchmarks"].pop(1)), f"lacks {LOADER}"),
    "a negative round": (
        _doc(lambda d: d["benchmarks"][0]["extra_info"]["img_per_s_rounds"].__setitem__(0, -1.0)),
        "samples must be a non-empty list of positive img/s values",
    ),
    "a bad spread": (
        _doc(lambda d: d["benchmarks"][0]["extra_info"].__setitem__("img_per_s_spread", "wide")),
        "img_per_s_spread must be a non-negative number",
    ),
    "no spread": (
        _doc(lambda d: d["benchmarks"][0]["extra_info"].pop("img_per_s_spread")),
        "no img_per_s_spread, which promotion checks",
    ),
    "not a benchmark id": (
        _doc(lambda d: d["benchmarks"][0].__setitem__("name", "test_train_step")),
        "is not a trainperf benchmark id",
    ),
    "a benchmark twice": (_doc(lambda d: d["benchmarks"].append(d["benchmarks"][0])), "appears twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_SECOND_RUN))
def test_bad_input_is_one_line_naming_the_file(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture, case: str
) -> None:
    make, message = BAD_SECOND_RUN[case]
    good = write(tmp_path, "good.json", run_doc(RUN2))
    bad = tmp_path / "bad.json"
    make(bad)
    assert promote_runs(baselines, good, bad) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {bad}: "), line
    assert message in line
    assert not list(baselines.iterdir())


def test_one_run_is_not_enough(tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture) -> None:
    only = write(tmp_path, "only.json", run_doc(RUN2))
    assert promote_runs(baselines, only) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"error: need at least 2 runs to check that they agree, got 1 ({only})"
    )


def test_the_same_run_twice_is_not_two_runs(tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture) -> None:
    run = write(tmp_path, "run.json", run_doc(RUN2))
    assert promote_runs(baselines, run, tmp_path / "." / "run.json") == 2
    assert "given twice" in one_error_line(capsys.readouterr().err)


def test_a_missing_baseline_directory_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = [write(tmp_path, "a.json", run_doc(RUN2)), write(tmp_path, "b.json", run_doc(RUN3))]
    assert promote_runs(tmp_path / "nowhere", *runs) == 2
    assert "baseline directory does not exist" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "nowhere").exists()


OTHER_KEY_FILE = json.dumps(
    {"schema": "trainperf-baseline", "schema_version": 1, "machine_key": "cpu-other-2c-torch2.14", "benchmarks": {}}
)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), (OTHER_KEY_FILE, "records machine key 'cpu-other-2c-torch2.14'")],
)
def test_a_committed_file_that_cannot_be_merged_is_left_alone(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    target = baselines / f"{KEY}.json"
    target.write_text(content, encoding="utf-8")
    runs = [write(tmp_path, "a.json", run_doc(RUN2)), write(tmp_path, "b.json", run_doc(RUN3))]
    assert promote_runs(baselines, *runs) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(target) in line
    assert message in line
    assert target.read_text(encoding="utf-8") == content


def test_a_bad_option_value_is_a_usage_error(tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture) -> None:
    runs = [write(tmp_path, "a.json", run_doc(RUN2)), write(tmp_path, "b.json", run_doc(RUN3))]
    with pytest.raises(SystemExit) as exc:
        promote_runs(baselines, *runs, extra=("--tolerance", "5"))
    assert exc.value.code == 2
    assert "expected a fraction between 0 and 1" in capsys.readouterr().err


def test_the_script_runs_from_the_command_line(tmp_path: Path, baselines: Path) -> None:
    runs = [write(tmp_path, "run-1.json", run_doc(RUN2)), write(tmp_path, "run-2.json", run_doc(RUN3))]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", *map(str, runs), "--baseline-dir", str(baselines)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    assert (baselines / f"{KEY}.json").is_file()
