"""``trainperf baseline promote | show``: saved runs become an entry's runs; bad input writes nothing."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from trainperf import cli
from trainperf.gate import baseline as bl

STEP = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
LOADER = "test_dataloader[cpu-w0-nopin]"
EPOCH = "test_epoch[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
KEY = "cpu-amd-epyc-2c-torch2.14"

# Per-round img/s of two default CPU runs on the 2-core development machine, a minute and a half apart.
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
PREFIX = "trainperf baseline promote: "


def scaled(run: dict[str, list[float]], factor: float) -> dict[str, list[float]]:
    return {name: [round(v * factor, 3) for v in rounds] for name, rounds in run.items()}


def median(rounds: list[float]) -> float:
    """The run's img/s as the suite saves it: the median of its rounds, to the milli-image."""
    return round(statistics.median(rounds), 3)


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def benchmark(name: str, rounds: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "group": None,
        "extra_info": {
            "trainperf_kind": name.split("[")[0].removeprefix("test_"),
            "config": {"device": "cpu", "batch_size": 128},
            "img_per_s": median(rounds),
            "img_per_s_rounds": list(rounds),
            "img_per_s_spread": 0.02,
            "backend_flags": FLAGS,
            "settings": SETTINGS,
        },
        "stats": {"median": 1.0, "rounds": len(rounds)},
    }


def run_doc(
    rounds: dict[str, list[float]],
    *,
    machine: dict[str, Any] = MACHINE,
    commit: str = "86af292",
    date: str = "2026-11-28T18:59:37.417577+00:00",
) -> dict[str, Any]:
    """A pytest-benchmark JSON document as the suite saves it, cut down to what promotion reads."""
    benches = [benchmark(name, values) for name, values in rounds.items()]
    # A compile-time benchmark carries no throughput: it must be left out, not rejected.
    benches.append({"name": "test_compile_time[cpu-default-fp32-contiguous-resnet18-b128-foreach]", "extra_info": {}})
    return {
        "machine_info": {"node": "vm", "trainperf": machine},
        "commit_info": {"id": commit, "dirty": False, "branch": "main"},
        "benchmarks": benches,
        "datetime": date,
        "version": "5.3.1",
    }


def write(directory: Path, name: str, doc: Any) -> Path:
    path = directory / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def day(n: int) -> str:
    return f"2026-11-{n:02d}T09:00:00+00:00"


@pytest.fixture
def baselines(tmp_path: Path) -> Path:
    directory = tmp_path / "baselines"
    directory.mkdir()
    return directory


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    return [
        write(tmp_path, "run-1.json", run_doc(RUN2, commit="aaa", date=day(1))),
        write(tmp_path, "run-2.json", run_doc(RUN3, commit="bbb", date=day(2))),
    ]


def target(baselines: Path) -> Path:
    return baselines / f"{KEY}.json"


def trainperf(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def promote(capsys: pytest.CaptureFixture, baselines: Path, *args: object) -> tuple[int, str, str]:
    return trainperf(capsys, "baseline", "promote", *args, "--baseline-dir", baselines)


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def committed(baselines: Path) -> bl.Baseline:
    """A baseline already in the directory: STEP with four runs and its own tolerance, EPOCH not run again."""
    old = bl.Baseline(
        KEY,
        {
            STEP: bl.Entry(
                700.0, (700.0, 701.0, 699.0), tolerance=0.08, provenance={"commit": "old"}, runs=(690, 705, 700, 702)
            ),
            EPOCH: bl.Entry(500.0, (500.0, 501.0, 499.0), provenance={"commit": "old"}, runs=(498.0, 502.0)),
        },
        default_tolerance=0.07,
    )
    bl.write_atomic(target(baselines), old)
    return old


# ------------------------------------------------------------------------------------------------------ promote


def test_runs_become_the_entry_runs_in_date_order(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture
) -> None:
    third = scaled(RUN2, 1.01)
    # Given newest first: the entry orders them by the run's datetime, not by the command line.
    runs = [
        write(tmp_path, "c.json", run_doc(third, commit="ccc", date=day(3))),
        write(tmp_path, "a.json", run_doc(RUN2, commit="aaa", date=day(1))),
        write(tmp_path, "b.json", run_doc(RUN3, commit="bbb", date=day(2))),
    ]
    code, out, err = promote(capsys, baselines, *runs)
    assert code == 0, err
    written = bl.load(target(baselines))
    assert written.machine_key == KEY
    assert set(written.entries) == {STEP, LOADER}  # the compile-time benchmark is left out
    for name in (STEP, LOADER):
        entry = written.entries[name]
        medians = (median(RUN2[name]), median(RUN3[name]), median(third[name]))
        assert entry.runs == medians
        assert entry.img_per_s == pytest.approx(geomean(list(medians)), rel=1e-12)
        assert entry.samples == tuple(third[name])  # the rounds of the newest run
    step = written.entries[STEP]
    assert step.provenance["commit"] == "ccc"
    assert step.provenance["date"] == day(3)
    assert step.provenance["promoted_from_runs"] == 3
    assert step.provenance["machine"] == MACHINE
    assert step.provenance["backend_flags"] == FLAGS
    assert step.provenance["settings"] == SETTINGS
    assert step.provenance["config"] == {"device": "cpu", "batch_size": 128}
    assert out.splitlines() == [
        f"3 runs of {KEY} (appended, keeping the newest 10 runs)",
        f"wrote {target(baselines)}: added 2, updated 0, kept 0 not run",
        f"  + {LOADER}",
        f"  + {STEP}",
    ]
    assert err == ""


def test_runs_are_appended_to_an_entry_and_the_newest_kept(
    baselines: Path, two_runs: list[Path], capsys: pytest.CaptureFixture
) -> None:
    old = committed(baselines)
    code, out, err = promote(capsys, baselines, *two_runs, "--keep", "5")
    assert code == 0, err
    new = bl.load(target(baselines))
    step = new.entries[STEP]
    # (690, 705, 700, 702) then the two new runs; the oldest drops out.
    expected = (705.0, 700.0, 702.0, median(RUN2[STEP]), median(RUN3[STEP]))
    assert step.runs == expected
    assert step.img_per_s == pytest.approx(geomean(list(expected)), rel=1e-12)
    assert step.tolerance == 0.08  # the entry's own tolerance carries over
    assert step.samples == tuple(RUN3[STEP])
    assert new.entries[LOADER].runs == (median(RUN2[LOADER]), median(RUN3[LOADER]))
    assert new.entries[EPOCH] == old.entries[EPOCH]  # not run: kept as it was
    assert new.entries[EPOCH].runs == (498.0, 502.0)
    assert new.default_tolerance == 0.07
    assert f"2 runs of {KEY} (appended, keeping the newest 5 runs)" in out
    assert "added 1, updated 1, kept 1 not run" in out
    assert f"  ~ {STEP}: 700.0 -> {step.img_per_s:,.1f} img/s" in out


def test_one_run_may_be_appended(tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture) -> None:
    committed(baselines)
    code, _, err = promote(capsys, baselines, write(tmp_path, "run.json", run_doc(RUN2)))
    assert code == 0, err
    assert bl.load(target(baselines)).entries[STEP].runs == (690, 705, 700, 702, median(RUN2[STEP]))


def test_replace_makes_the_runs_the_entry_runs(
    baselines: Path, two_runs: list[Path], capsys: pytest.CaptureFixture
) -> None:
    old = committed(baselines)
    code, out, err = promote(capsys, baselines, *two_runs, "--replace")
    assert code == 0, err
    new = bl.load(target(baselines))
    step = new.entries[STEP]
    assert step.runs == (median(RUN2[STEP]), median(RUN3[STEP]))
    assert step.img_per_s == pytest.approx(geomean(list(step.runs)), rel=1e-12)
    assert step.tolerance == 0.08
    assert new.entries[EPOCH] == old.entries[EPOCH]
    assert f"2 runs of {KEY} (replacing their runs)" in out
    assert f"wrote {target(baselines)}: added 1, updated 1, kept 1 not run" in out


def test_replace_with_one_run_is_not_updated(tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture) -> None:
    committed(baselines)
    before = target(baselines).read_bytes()
    only = write(tmp_path, "only.json", run_doc(RUN2))
    code, out, err = promote(capsys, baselines, only, "--replace")
    assert code == 6
    assert out == ""
    assert one_error_line(err) == (
        f"{PREFIX}baseline not updated: --replace needs at least 2 runs to measure between-run noise, got 1"
    )
    assert target(baselines).read_bytes() == before


def test_a_run_lacking_a_benchmark_is_not_promoted(
    tmp_path: Path, baselines: Path, capsys: pytest.CaptureFixture
) -> None:
    full = write(tmp_path, "full.json", run_doc(RUN2, date=day(1)))
    partial = write(tmp_path, "partial.json", run_doc({STEP: RUN3[STEP]}, date=day(2)))
    code, out, err = promote(capsys, baselines, full, partial)
    assert code == 6
    assert out == ""
    assert one_error_line(err) == (
        f"{PREFIX}baseline not updated: {partial}: no result for {LOADER} (a failed or skipped case?)"
    )
    assert not list(baselines.iterdir())


def _other_machine(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    there = write(tmp_path, "there.json", run_doc(RUN3, machine={**MACHINE, "cpu_count": 4}, date=day(3)))
    return [runs[0], there], [str(there), "'cpu-amd-epyc-4c-torch2.14'", f"'{KEY}'"]


def _same_file_twice(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    again = tmp_path / "." / runs[0].name
    return [runs[0], again], [str(again), "given twice"]


def _no_directory(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    baselines.rmdir()
    return runs, [str(baselines), "baseline directory does not exist"]


def _corrupt_baseline(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    target(baselines).write_text('{"schema": "trainperf-baseline", ', encoding="utf-8")
    return runs, [str(target(baselines)), "not valid JSON"]


def _baseline_of_another_key(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    bl.write_atomic(target(baselines), bl.Baseline("cpu-other-2c-torch2.14", {}))
    return runs, [str(target(baselines)), "records machine key 'cpu-other-2c-torch2.14'"]


def _not_a_run(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    bad = write(tmp_path, "bad.json", {"schema": "trainperf-baseline", "benchmarks": {}})
    return [runs[0], bad], [str(bad), "not pytest-benchmark output"]


def _no_throughput(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    doc = run_doc({})
    bad = write(tmp_path, "compile-only.json", doc)
    return [runs[0], bad], [str(bad), "no trainperf throughput benchmark"]


def _missing_run(tmp_path: Path, baselines: Path, runs: list[Path]) -> tuple[list[Path], list[str]]:
    return [runs[0], tmp_path / "nowhere.json"], [str(tmp_path / "nowhere.json"), "no such file"]


BAD_INPUT = {
    "runs of two machine keys": _other_machine,
    "the same file twice": _same_file_twice,
    "no baseline directory": _no_directory,
    "a corrupt committed baseline": _corrupt_baseline,
    "a committed baseline of another key": _baseline_of_another_key,
    "not a run": _not_a_run,
    "a run without throughput benchmarks": _no_throughput,
    "a missing run file": _missing_run,
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(
    tmp_path: Path, baselines: Path, two_runs: list[Path], capsys: pytest.CaptureFixture, case: str
) -> None:
    runs, wanted = BAD_INPUT[case](tmp_path, baselines, two_runs)
    before = {p.name: p.read_bytes() for p in baselines.iterdir()} if baselines.is_dir() else None
    code, out, err = promote(capsys, baselines, *runs)
    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert line.startswith(PREFIX), line
    for text in wanted:
        assert text in line
    after = {p.name: p.read_bytes() for p in baselines.iterdir()} if baselines.is_dir() else None
    assert after == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--keep", "0"), "expected a positive integer, got '0'"),
        (("--keep", "ten"), "expected a positive integer, got 'ten'"),
        (("--keep", "-3"), "expected a positive integer, got '-3'"),
        (("--replace=yes",), "ignored explicit argument 'yes'"),
    ],
)
def test_a_bad_option_value_is_a_usage_error(
    baselines: Path, two_runs: list[Path], capsys: pytest.CaptureFixture, args: tuple[str, ...], message: str
) -> None:
    code, out, err = promote(capsys, baselines, *two_runs, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert not list(baselines.iterdir())


def test_promote_needs_a_run_and_baseline_an_action(capsys: pytest.CaptureFixture) -> None:
    code, _, err = trainperf(capsys, "baseline", "promote")
    assert code == 2
    assert "the following arguments are required: FILE" in err
    code, _, err = trainperf(capsys, "baseline")
    assert code == 2
    assert one_error_line(err) == "trainperf baseline: error: an action is required (record, promote, show)"


# --------------------------------------------------------------------------------------------------------- show

SHOW_HEADER = "benchmark img/s runs measured noise noise used tolerance threshold detectable"


def rows(out: str) -> dict[str, dict[str, str]]:
    """The show table: per benchmark, its cells by column name."""
    columns = ["img/s", "runs", "measured noise", "noise used", "tolerance", "threshold", "detectable"]
    table = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0].startswith("test_"):
            assert len(cells) == 1 + len(columns), line
            table[cells[0]] = dict(zip(columns, cells[1:], strict=True))
    return table


def percent(cell: str) -> float:
    return float(cell.rstrip("%")) / 100


def test_show_prints_runs_noise_threshold_and_detectable(baselines: Path, capsys: pytest.CaptureFixture) -> None:
    quiet = (600.0, 603.0, 598.0, 601.0, 599.5, 602.0, 597.0)
    noisy = (600.0, 700.0, 550.0, 650.0)
    bl.write_atomic(
        target(baselines),
        bl.Baseline(
            KEY,
            {
                STEP: bl.Entry(geomean(list(quiet)), quiet[:3], runs=quiet),
                LOADER: bl.Entry(geomean(list(noisy)), noisy[:3], runs=noisy),
                EPOCH: bl.Entry(500.0, (500.0, 501.0, 499.0), tolerance=0.08),  # one run, schema 1 style
            },
        ),
    )
    code, out, err = trainperf(capsys, "baseline", "show", target(baselines))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{target(baselines)}: machine key {KEY}"
    assert " ".join(lines[1].split()) == SHOW_HEADER
    table = rows(out)
    assert list(table) == sorted([STEP, LOADER, EPOCH])
    step, loader, epoch = table[STEP], table[LOADER], table[EPOCH]
    assert (step["runs"], loader["runs"], epoch["runs"]) == ("7", "4", "1")
    assert step["img/s"] == "600.1"
    assert 0 < percent(step["measured noise"]) < 0.01  # 0.3%
    assert 0.08 < percent(loader["measured noise"]) < 0.13  # 10.4%
    assert epoch["measured noise"] == "-"  # one run measures no between-run noise: the prior is used
    assert epoch["noise used"] == "3.0%"
    assert (step["tolerance"], loader["tolerance"], epoch["tolerance"]) == ("5.0%", "5.0%", "8.0%")
    # Seven runs that agree: the tolerance sets the threshold, and a little more is detectable.
    assert step["threshold"] == "-5.0%"
    assert 0.05 < -percent(step["detectable"]) < 0.08
    # Four runs 10% apart: the noise sets the threshold, far past the tolerance.
    assert -percent(loader["threshold"]) > 0.15
    assert -percent(loader["detectable"]) > -percent(loader["threshold"])
    assert err == ""


def test_show_reads_what_promote_wrote(baselines: Path, two_runs: list[Path], capsys: pytest.CaptureFixture) -> None:
    assert promote(capsys, baselines, *two_runs)[0] == 0
    code, out, err = trainperf(capsys, "baseline", "show", baselines)
    assert code == 0, err
    table = rows(out)
    assert table[STEP]["runs"] == "2"
    assert table[STEP]["measured noise"] != "-"


def test_show_a_directory_shows_every_baseline_file(baselines: Path, capsys: pytest.CaptureFixture) -> None:
    other = "cuda-nvidia-h200-torch2.11-cuda12.8"
    bl.write_atomic(target(baselines), bl.Baseline(KEY, {STEP: bl.Entry(600.0, (600.0,))}))
    bl.write_atomic(baselines / f"{other}.json", bl.Baseline(other, {EPOCH: bl.Entry(9000.0, (9000.0,))}))
    (baselines / "README.md").write_text("not a baseline\n", encoding="utf-8")
    code, out, err = trainperf(capsys, "baseline", "show", baselines)
    assert code == 0, err
    titles = [line for line in out.splitlines() if ": machine key " in line]
    assert titles == [f"{target(baselines)}: machine key {KEY}", f"{baselines / other}.json: machine key {other}"]
    assert set(rows(out)) == {STEP, EPOCH}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nothing.json", "no such baseline file"),
        (lambda d: write(d, "broken.json", {"schema": "trainperf-baseline"}), "schema_version must be an integer"),
        (lambda d: write(d, "run.json", run_doc(RUN2)), "not a trainperf baseline"),
    ],
    ids=["missing", "invalid", "a run"],
)
def test_show_a_bad_file_is_one_line_naming_it(
    baselines: Path, capsys: pytest.CaptureFixture, make: Any, message: str
) -> None:
    path = make(baselines)
    code, _, err = trainperf(capsys, "baseline", "show", path)
    assert code == 2
    line = one_error_line(err)
    assert line.startswith(f"trainperf baseline show: {path}: "), line
    assert message in line


def test_show_an_empty_directory_is_bad_input(baselines: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = trainperf(capsys, "baseline", "show", baselines)
    assert code == 2
    assert one_error_line(err) == f"trainperf baseline show: no baseline files in {baselines}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--alpha", "5"), "expected a fraction between 0 and 1"),
        (("--run-noise", "lots"), "expected a fraction (0.05) or a percentage (5%)"),
    ],
)
def test_show_a_bad_option_value_is_a_usage_error(
    baselines: Path, capsys: pytest.CaptureFixture, args: tuple[str, ...], message: str
) -> None:
    code, _, err = trainperf(capsys, "baseline", "show", baselines, *args)
    assert code == 2
    assert message in err
