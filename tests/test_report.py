"""``trainperf report``: golden tables from committed runs, speedups, charts, machines kept apart, the short
summary table, bad input, and what importing the CLI costs."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from trainperf import cli
from trainperf import report as rp
from trainperf.gate.baseline import load as load_baseline
from trainperf.pytest_edge.runner import Finished
from trainperf.report import charts, summary, tables
from trainperf.results import Result, from_extra_info

DATA = Path(__file__).parent / "data" / "report"
EXPECTED = DATA / "expected"
CPU_RUN = DATA / "cpu_run.json"  # a real default CPU run on a 2-core VM, trimmed
HISTORY = DATA / "history"  # three real earlier CPU runs as pytest-benchmark autosaves, trimmed
CUDA_RUN = DATA / "synthetic_cuda_run.json"  # hand-made, not a measurement: exercises the speedup columns
CPU_BASELINE = DATA / "baseline_cpu.json"
CPU_KEY = "cpu-amd-epyc-2c-torch2.14"
CUDA_KEY = "cuda-nvidia-h200-torch2.11-cuda12.8"
CONSOLE_SCRIPT = Path(sys.executable).parent / "trainperf"  # installed by `pip install -e .` with the entry point
STEP = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/data/report/expected/NAME. Run with TRAINPERF_REGEN_GOLDEN=1 to rewrite the expected
    files from the current code instead; review the diff before committing them."""
    path = EXPECTED / name
    if os.environ.get("TRAINPERF_REGEN_GOLDEN") == "1":
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def doc(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def record(kind: str, case_id: str, **extra: object) -> Result:
    """A result record as the suite stores it (read back through the one parser)."""
    return from_extra_info({"trainperf_kind": kind, "case_id": case_id, **extra})


@pytest.mark.parametrize(
    ("inputs", "golden"),
    [
        ([CPU_RUN], "cpu_run"),
        ([CUDA_RUN], "synthetic_cuda_run"),
        ([HISTORY, CUDA_RUN], "mixed_history"),
    ],
    ids=["cpu", "cuda", "mixed"],
)
@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("text", "txt"), ("markdown", "md"), ("csv", "csv"), ("summary", "summary.txt")],
    ids=["text", "md", "csv", "summary"],
)
def test_golden(capsys, inputs, golden, fmt, suffix):
    code, out, err = run_cli(capsys, "report", "--format", fmt, *inputs)
    assert (code, err) == (0, "")
    assert "nan" not in out.lower()
    assert_golden(f"{golden}.{suffix}", out)


def test_step_and_epoch_of_a_case_are_one_row():
    table = tables.training_frame(rp.load_run(CPU_RUN))
    assert list(table["case_id"]) == ["cpu-eager-fp32-contiguous-resnet18-b128-foreach"]
    row = table.iloc[0]
    assert (row["img_per_s"], row["epoch_s"], row["epoch_img_per_s"]) == (662.416, 8.683972, 589.592)
    assert row["peak_mem_mib"] == 1217.421875  # the epoch's peak, the higher of the two
    assert math.isnan(row["vs_cpu"]) and math.isnan(row["vs_eager"])


def test_speedups_over_cpu_and_eager():
    table = tables.training_frame(rp.load_run(CUDA_RUN)).set_index("case_id")
    cpu = 905.3
    # An exact CPU twin exists for CUDA eager; CUDA compiled falls back to the CPU eager fp32 contiguous case.
    assert table.loc["cuda-eager-fp32-contiguous-resnet18-b128-foreach", "vs_cpu"] == pytest.approx(11875.4 / cpu)
    assert table.loc["cuda-default-fp32-contiguous-resnet18-b128-foreach", "vs_cpu"] == pytest.approx(19342.6 / cpu)
    assert table.loc["cuda-default-fp32-contiguous-resnet18-b128-foreach", "vs_eager"] == pytest.approx(
        19342.6 / 11875.4
    )
    fast = "cuda-reduce_overhead-bf16-channels_last-resnet18_cifar-b128-fused"
    assert table.loc[fast, "vs_eager"] == pytest.approx(14236.9 / 9874.2)  # over the fused eager twin
    assert math.isnan(table.loc[fast, "vs_cpu"])  # no CPU run of resnet18_cifar
    assert math.isnan(table.loc["cpu-eager-fp32-contiguous-resnet18-b128-foreach", "vs_cpu"])
    assert math.isnan(table.loc["cuda-eager-fp32-contiguous-resnet18-b128-foreach", "vs_eager"])


def test_vs_cpu_prefers_the_exact_cpu_twin():
    run = doc(CUDA_RUN)
    twin = copy.deepcopy(next(b for b in run["benchmarks"] if b["extra_info"]["case_id"].startswith("cpu-eager")))
    twin["extra_info"].update(case_id="cpu-default-fp32-contiguous-resnet18-b128-foreach", img_per_s=1000.0)
    twin["extra_info"]["config"]["compile"] = "default"
    run["benchmarks"].append(twin)
    table = tables.training_frame(rp.parse_run(run, CUDA_RUN)).set_index("case_id")
    assert table.loc["cuda-default-fp32-contiguous-resnet18-b128-foreach", "vs_cpu"] == pytest.approx(19.3426)


def test_history_is_ordered_by_datetime_and_read_once():
    autosaves = sorted(HISTORY.rglob("*.json"))
    runs = rp.load_runs([autosaves[2], CPU_RUN, autosaves[0], HISTORY])
    assert [r.path.name for r in runs] == [*(p.name for p in autosaves), CPU_RUN.name]
    (machine,) = rp.group_by_machine(runs)
    assert machine.latest.path == CPU_RUN
    points = charts.history(machine)[STEP]
    assert [p.img_per_s for p in points] == [578.201, 614.166, 600.03, 662.416]
    assert (points[0].low, points[0].high) == (177.413, 627.259)  # the noisy first run's slowest and fastest rounds


def test_mixed_machines_get_labelled_sections(capsys):
    code, out, _ = run_cli(capsys, "report", HISTORY, CUDA_RUN)
    assert code == 0
    headers = [line for line in out.splitlines() if line.startswith("== machine")]
    assert headers == [f"== machine {CPU_KEY} ==", f"== machine {CUDA_KEY} =="]
    cpu_part, cuda_part = out.split(headers[1])
    assert "0003_" in cpu_part and "synthetic" not in cpu_part
    assert "cuda-eager" in cuda_part and "0003_" not in cuda_part
    code, out, _ = run_cli(capsys, "report", "--format", "markdown", HISTORY, CUDA_RUN)
    assert [line for line in out.splitlines() if line.startswith("## ")] == [
        f"## trainperf: machine `{CPU_KEY}`",
        f"## trainperf: machine `{CUDA_KEY}`",
    ]


def test_same_key_on_another_cpu_is_another_machine(tmp_path):
    other = doc(CUDA_RUN)
    other["machine_info"]["trainperf"]["cpu_model"] = "Intel Xeon Platinum 8480+"
    runs = [rp.load_run(CUDA_RUN), rp.parse_run(other, tmp_path / "other.json")]
    labels = [m.label for m in rp.group_by_machine(runs)]
    assert len(labels) == 2 and labels[0] != labels[1]
    assert all(label.startswith(CUDA_KEY) for label in labels)


def test_unknown_kinds_are_listed_and_a_loader_only_run_renders(tmp_path):
    run = doc(CPU_RUN)
    run["benchmarks"] = [b for b in run["benchmarks"] if b["extra_info"]["trainperf_kind"] == "dataloader"]
    run["benchmarks"][0]["extra_info"]["trainperf_kind"] = "inference"
    text = rp.render(rp.group_by_machine([rp.parse_run(run, tmp_path / "x.json")]))
    assert "training" not in text
    assert "other benchmarks" in text and "inference" in text


@pytest.mark.parametrize("stored", [True, False], ids=["stored-scaling", "computed-scaling"])
def test_distributed_cases_get_their_own_section_in_world_size_order(tmp_path, stored):
    """Older runs stored each size's scaling efficiency; newer ones store the case's group and the report computes
    it over the run when it reads it."""
    run = doc(CPU_RUN)
    case = "cpu-eager-fp32-contiguous-resnet18-b32-foreach"
    for size, rate, efficiency in ((2, 304.2, 0.7678), (1, 198.1, 1.0)):  # measured here, ws2 saved first
        config = {"device": "cpu", "model": "resnet18", "batch_size": 32, "world_size": size, "nnodes": 1}
        extra = {
            "trainperf_kind": "ddp_train_step",
            "case_id": f"{case}-ws{size}",
            "config": config,
            "img_per_s": rate,
            "img_per_s_rounds": [rate],
            "img_per_s_spread": 0.02,
            "img_per_s_per_device": rate / size,
            "scaling_efficiency": efficiency,
            "world_size": size,
            "step_ms": 32 * size / rate * 1e3,
            "noisy": False,
            "throttled": None,
        }
        if not stored:
            del extra["scaling_efficiency"]
            extra["distributed_group"] = case
        run["benchmarks"].append(
            {**run["benchmarks"][0], "name": f"test_ddp_train_step[{case}-ws{size}]", "extra_info": extra}
        )
    parsed = rp.parse_run(run, tmp_path / "ddp.json")
    table = tables.distributed_frame(parsed)
    assert list(table["world_size"]) == [1.0, 2.0]
    assert list(table["img_per_s_per_device"]) == [198.1, 152.1]
    assert list(table["scaling_efficiency"]) == [1.0, 0.7678]
    text = rp.render(rp.group_by_machine([parsed]))
    assert "distributed (DDP)" in text and "other benchmarks" not in text
    ws2_line = next(line for line in text.splitlines() if f"{case}-ws2" in line)
    assert "76.8" in ws2_line and "304.2" in ws2_line


def test_summary_of_one_run_is_the_short_table_alone(capsys):
    code, out, err = run_cli(capsys, "report", "--format", "summary", CPU_RUN)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    count = len(doc(CPU_RUN)["benchmarks"])
    assert lines[0].split()[:4] == ["#", "benchmark", "img/s", "spread"] and set(lines[1]) == {"-", " "}
    # one row per benchmark, no machine header; then a blank line and one line per label with the full test id
    assert len(lines) == 2 + count + 1 + count and lines[2 + count] == ""
    assert lines[2 + count + 5] == f"#5  {STEP}"
    assert lines[2 + 4].split()[:5] == ["#5", "train_step", "662.4", "2.6%", "193.24"]


def test_a_result_without_case_id_takes_the_benchmark_param(tmp_path):
    path = _first_result_changed(case_id=None)(tmp_path)
    assert rp.load_run(path).benchmarks[0].case_id == "cpu-w0-nopin"  # its "param"


def test_other_suites_benchmarks_are_skipped(tmp_path):
    run = doc(CPU_RUN)
    del run["benchmarks"][0]["extra_info"]["trainperf_kind"]
    run["benchmarks"][1]["extra_info"] = {"rows": "not ours"}
    parsed = rp.parse_run(run, tmp_path / "shared.json")
    assert [b.name for b in parsed.benchmarks] == [b["name"] for b in doc(CPU_RUN)["benchmarks"][2:]]


def test_summary_of_a_history_names_the_machine_and_its_latest_run(capsys):
    code, out, _ = run_cli(capsys, "report", "--format", "summary", HISTORY)
    assert code == 0
    header, run, table_header = out.splitlines()[:3]
    assert header == f"== machine {CPU_KEY} =="
    assert run.startswith("Latest run 2026-11-28 19:01:04 UTC") and "0003_" in run and "3 runs since" in run
    assert table_header.split()[:2] == ["#", "benchmark"]


def test_summary_rows_format_every_kind():
    rows = [
        summary.row(
            "test_train_step[cpu-x]",
            record(
                "train_step",
                "cpu-x",
                img_per_s=1234.5,
                img_per_s_rounds=[1234.5],
                img_per_s_spread=0.012,
                step_ms=25.9,
                compile_s=0.5,
                peak_mem_mib=800.0,
                gpu_util_pct=None,
                loss_first=2.3,
                loss_last=1.1,
                noisy=False,
            ),
        ),
        summary.row(
            "test_compile_time[cuda-y]", record("compile_time", "cuda-y", compile_cold_s=40.0, compile_warm_s=9.5)
        ),
        summary.row(
            "test_epoch[cuda-z]",
            record(
                "epoch",
                "cuda-z",
                img_per_s=30000.0,
                img_per_s_rounds=[30000.0],
                epoch_s=1.66,
                noisy=True,
                throttled=True,
                gpu_util_pct=97.0,
            ),
        ),
        summary.row(
            "test_ddp_train_step[cpu-x-ws2]",
            record(
                "ddp_train_step",
                "cpu-x-ws2",
                img_per_s=1800.0,
                img_per_s_rounds=[1800.0],
                world_size=2,
                scaling_efficiency=0.9,
            ),
        ),
    ]
    out = summary.table_lines(rows)
    assert out[0].split() == [
        *("#", "benchmark", "img/s", "spread", "step", "ms", "epoch", "s", "compile", "s"),
        *("peak", "MiB", "GPU", "%", "scaling", "loss"),
    ]
    assert out[2].split() == [
        *("#1", "train_step", "1,234.5", "1.2%", "25.90", "-", "0.50", "800", "-", "-", "2.30->1.10"),
    ]
    assert out[3].split()[:2] == ["#2", "compile_time"] and "40.0/9.5 c/w" in out[3]
    assert out[4].split()[:2] == ["#3", "epoch"] and " 97 " in out[4] and "NOISY" not in out[4]
    assert out[5].split()[:2] == ["#4", "ddp_train_step"] and " 90% " in out[5]
    # Under the table: each label's full test id, and its flags where it has any.
    assert out[6:] == [
        "",
        "#1  test_train_step[cpu-x]",
        "#2  test_compile_time[cuda-y]",
        "#3  test_epoch[cuda-z]  NOISY,THROTTLED",
        "#4  test_ddp_train_step[cpu-x-ws2]",
    ]


def test_summary_shortens_a_long_test_function_and_small_scaling_keeps_a_digit():
    rec = record(
        "ddp_train_step", "cpu-x-ws2", img_per_s=9.0, img_per_s_rounds=[9.0], world_size=2, scaling_efficiency=0.001
    )
    out = summary.table_lines([summary.row("test_a_benchmark_with_a_very_long_name[cpu-x-ws2]", rec)])
    assert out[2].split()[:2] == ["#1", "a_benchmark_wit~"] and " 0.1% " in out[2]  # not "0%"
    assert out[-1] == "#1  test_a_benchmark_with_a_very_long_name[cpu-x-ws2]"


def test_summary_of_an_unknown_kind_shows_what_it_stored():
    newer = record("inference", "cpu-x", img_per_s=321.0, step_ms="fast", noisy=True)
    cells = summary.row("test_inference[cpu-x]", newer)
    assert cells[1:4] == ("321.0", "-", "-") and cells[-1] == "NOISY"  # a value that is not a number shows as "-"


def test_live_summary_names_each_benchmark_by_its_test_id():
    rec = record("train_step", "cuda-x", img_per_s=500.0, img_per_s_rounds=[500.0], cudagraph_skips=2)
    lines = summary.format_results([Finished("perf/test_train.py::test_train_step[cuda-x]", "test_train_step", rec)])
    assert lines[2].split()[:3] == ["#1", "train_step", "500.0"]
    assert lines[-1] == "#1  test_train_step[cuda-x]  NO-CUDAGRAPHS"


def test_live_summary_computes_scaling_over_the_run():
    def ddp(size: int, rate: float) -> Finished:
        rec = record(
            "ddp_train_step",
            f"cpu-x-ws{size}",
            img_per_s=rate,
            img_per_s_rounds=[rate],
            world_size=size,
            distributed_group="cpu-x",
        )
        return Finished(f"perf/test_ddp.py::test_ddp_train_step[cpu-x-ws{size}]", "test_ddp_train_step", rec)

    lines = summary.format_results([ddp(2, 304.2), ddp(1, 198.1)])  # the larger world size ran first
    assert lines[2].startswith("#1 ") and " 77% " in lines[2]
    assert lines[3].startswith("#2 ") and " 100% " in lines[3]
    assert lines[-2:] == ["#1  test_ddp_train_step[cpu-x-ws2]", "#2  test_ddp_train_step[cpu-x-ws1]"]


def test_the_cli_and_the_summary_import_no_pandas_torch_or_matplotlib():
    heavy = ("pandas", "torch", "matplotlib", "pynvml")
    script = f"""
import contextlib, io, sys
from trainperf import cli
loaded = lambda: [m for m in {heavy!r} if m in sys.modules]
assert not loaded(), ("import trainperf.cli", loaded())
with contextlib.redirect_stdout(io.StringIO()):
    assert cli.main(["--version"]) == 0
    assert cli.main(["report", "--format", "summary", {str(CPU_RUN)!r}]) == 0
assert not loaded(), ("--version and --format summary", loaded())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plots(capsys, tmp_path):
    out_dir = tmp_path / "charts"
    code, out, err = run_cli(
        capsys, "report", HISTORY, CPU_RUN, CUDA_RUN, "--plot", out_dir, "--baseline", CPU_BASELINE
    )
    assert (code, err) == (0, "")
    printed = [Path(line) for line in out.splitlines() if line.endswith(".png")]
    assert sorted(printed) == sorted(out_dir.iterdir())
    names = {p.name for p in printed}
    for key in (CPU_KEY, CUDA_KEY):  # one set of files per machine
        assert f"latest-{key}.png" in names
        assert f"history-{key}-test_dataloader_cpu-w0-nopin.png" in names
    assert f"history-{CPU_KEY}-{charts.safe_name(STEP)}.png" in names
    assert not any(set(name) & set("[]/ ") for name in names)
    for path in printed:
        width, height = png_size(path)
        assert width > 300 and height > 200, path


def test_the_baseline_is_a_line_on_its_machines_history_chart():
    (machine,) = rp.group_by_machine(rp.load_runs([HISTORY]))
    baseline = load_baseline(CPU_BASELINE)
    fig = charts._history_figure(machine, STEP, charts.history(machine)[STEP], baseline.entries[STEP].img_per_s)
    assert [616.3, 616.3] in [list(line.get_ydata()) for line in fig.axes[0].lines]


def test_safe_name():
    assert charts.safe_name(STEP) == "test_train_step_cpu-eager-fp32-contiguous-resnet18-b128-foreach"
    assert charts.safe_name("a/../b c") == "a_.._b_c"
    long = charts.safe_name("x" * 300)
    assert len(long) <= 120 and long != charts.safe_name("x" * 301)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _no_trainperf(tmp_path: Path) -> Path:
    run = doc(CPU_RUN)
    for b in run["benchmarks"]:
        del b["extra_info"]["trainperf_kind"]
    return write_json(tmp_path / "other_suite.json", run)


def _first_result_changed(**changes: object):
    """A maker of a copy of CPU_RUN whose first benchmark (a DataLoader result) has ``changes`` in its extra_info
    (``None`` deletes the key, and ``param`` is the benchmark's own)."""

    def make(tmp_path: Path) -> Path:
        run = doc(CPU_RUN)
        bench = run["benchmarks"][0]
        for key, value in changes.items():
            where = bench if key == "param" else bench["extra_info"]
            if value is None:
                del where[key]
            else:
                where[key] = value
        return write_json(tmp_path / "bad_result.json", run)

    return make


FIRST = "test_dataloader[cpu-w0-nopin]"


def _malformed_machine(tmp_path: Path) -> Path:
    run = doc(CPU_RUN)
    run["machine_info"]["trainperf"].update(cuda_available=True, gpu_name=["not", "a", "name"])
    return write_json(tmp_path / "malformed.json", run)


def _no_machine(tmp_path: Path) -> Path:
    run = doc(CPU_RUN)
    del run["machine_info"]["trainperf"]
    return write_json(tmp_path / "no_machine.json", run)


def _bad_file_in_history(tmp_path: Path) -> Path:
    history = tmp_path / "benchmarks"
    shutil.copytree(HISTORY, history)
    (history / "Linux-CPython-3.11-64bit" / "0004_broken.json").write_text('{"benchmarks": [', encoding="utf-8")
    return history


BAD_INPUTS = {
    "missing": (lambda tmp: tmp / "nope.json", "no such file or directory"),
    "not-json": (lambda tmp: write_text(tmp / "notes.json", "hello"), "not valid JSON (Expecting value at line 1"),
    "not-utf8": (lambda tmp: write_bytes(tmp / "latin1.json", b'{"a": "\xe9"}'), "not UTF-8 text"),
    "no-benchmarks": (lambda tmp: write_json(tmp / "x.json", {"foo": 1}), "not pytest-benchmark output"),
    "a-list": (lambda tmp: write_json(tmp / "x.json", [1, 2]), "not pytest-benchmark output"),
    "no-trainperf": (_no_trainperf, "no trainperf benchmarks (no 'trainperf_kind' in any extra_info)"),
    # the result record's checks, naming the benchmark and the key
    "bad-number": (_first_result_changed(img_per_s="fast"), f"{FIRST}: img_per_s must be a number or null, got 'fast'"),
    "bad-rounds": (
        _first_result_changed(img_per_s_rounds=[1.0, "x"]),
        f"{FIRST}: img_per_s_rounds must be a list of numbers, got [1.0, 'x']",
    ),
    "bad-config": (_first_result_changed(config="cpu"), f"{FIRST}: config must be an object, got 'cpu'"),
    "bad-case-id": (_first_result_changed(case_id=7), f"{FIRST}: case_id must be a string, got 7"),
    "no-case-id": (_first_result_changed(case_id=None, param=None), f"{FIRST}: case_id is missing"),
    "bad-kind": (_first_result_changed(trainperf_kind=5), f"{FIRST}: trainperf_kind is missing or not a string"),
    "no-rate": (_first_result_changed(img_per_s=None), f"{FIRST}: img_per_s is missing"),
    "newer-result": (
        _first_result_changed(trainperf_result_version=99),
        f"{FIRST}: trainperf_result_version 99: this trainperf reads up to",
    ),
    # the gate's and promotion's document check, with their wording
    "malformed-machine": (_malformed_machine, "machine_info.trainperf is malformed; cannot compute its machine key"),
    "no-machine": (_no_machine, "no machine_info.trainperf; this run was not recorded by the trainperf suite"),
    "empty-dir": (lambda tmp: mkdir(tmp / "empty"), "no *.json files in this directory"),
}


def assert_one_line_error(code: int, out: str, err: str, path: Path, problem: str) -> None:
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"trainperf report: {path}: ")
    assert problem in err


@pytest.mark.parametrize("fmt", ["text", "summary"])
@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input(capsys, tmp_path, case, fmt):
    make, problem = BAD_INPUTS[case]
    path = make(tmp_path)
    assert_one_line_error(*run_cli(capsys, "report", "--format", fmt, CPU_RUN, path), path, problem)


def test_a_broken_file_in_a_history_is_named(capsys, tmp_path):
    history = _bad_file_in_history(tmp_path)
    broken = history / "Linux-CPython-3.11-64bit" / "0004_broken.json"
    assert_one_line_error(*run_cli(capsys, "report", history), broken, "not valid JSON")


def test_bad_baselines_and_chart_dirs(capsys, tmp_path):
    out_dir = tmp_path / "charts"
    code, out, err = run_cli(capsys, "report", CUDA_RUN, "--plot", out_dir, "--baseline", CPU_BASELINE)
    assert_one_line_error(code, out, err, CPU_BASELINE, f"baseline is for machine {CPU_KEY}, the runs are from")
    assert not out_dir.exists()
    wrong = write_json(tmp_path / "wrong.json", {"schema": "other"})
    code, out, err = run_cli(capsys, "report", CPU_RUN, "--plot", out_dir, "--baseline", wrong)
    assert_one_line_error(code, out, err, wrong, "not a trainperf baseline")
    a_file = write_text(tmp_path / "file.png", "")
    assert_one_line_error(*run_cli(capsys, "report", CPU_RUN, "--plot", a_file), a_file, "not a directory")


def test_charts_without_matplotlib_say_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import fails as if not installed
    out_dir = tmp_path / "charts"
    code, out, err = run_cli(capsys, "report", CPU_RUN, "--plot", out_dir)
    assert_one_line_error(code, out, err, out_dir, "charts need matplotlib (pip install matplotlib)")


def test_usage_errors(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: trainperf") and "report" in err
    code, _, err = run_cli(capsys, "report", CPU_RUN, "--baseline", CPU_BASELINE)
    assert code == 2 and "--plot" in err
    code, _, err = run_cli(capsys, "report", "--format", "html", CPU_RUN)
    assert code == 2 and "invalid choice" in err


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="the trainperf console script is not installed")
def test_console_script_exit_code(tmp_path):
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "report", str(tmp_path / "nope.json")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr == f"trainperf report: {tmp_path / 'nope.json'}: no such file or directory\n"
    notes = write_text(tmp_path / "notes.json", "hello")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "report", "--format", "summary", str(notes)], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"trainperf report: {notes}: not valid JSON") and done.stderr.count("\n") == 1
