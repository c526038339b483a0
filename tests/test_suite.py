"""pytester runs of the real perf/ suite on CPU with a tiny model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TINY_ID = "cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach"


def _benchmarks(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc, {b["name"]: b for b in doc["benchmarks"]}


def test_cpu_suite_runs_and_records_metrics(perf_suite, tmp_path):
    out = tmp_path / "result.json"
    result = perf_suite.run("-m", "cpu", f"--benchmark-json={out}", "-rs")
    result.assert_outcomes(passed=4)  # train step, epoch, loader w0, resident loader
    result.stdout.fnmatch_lines(
        [
            "*trainperf environment*",
            "torch *, torchvision *",
            "backend flags: cudnn_benchmark=True*",
            "*trainperf results*",
            f"#* test_train_step[[]{TINY_ID}[]]*",  # a row's label and full id, under the table
        ]
    )
    doc, benches = _benchmarks(out)
    step = benches[f"test_train_step[{TINY_ID}]"]["extra_info"]
    assert step["trainperf_kind"] == "train_step"
    assert step["config"]["model"] == "tinymodel:tiny" and step["config"]["batch_size"] == 32
    assert len(step["img_per_s_rounds"]) == 3 and all(r > 0 for r in step["img_per_s_rounds"])
    assert min(step["img_per_s_rounds"]) <= step["img_per_s"] <= max(step["img_per_s_rounds"])
    assert step["steps_per_round"] == 3
    assert math.isclose(step["step_ms"], 32 / step["img_per_s"] * 1e3, rel_tol=1e-3)
    assert step["loss_last"] < step["loss_first"]
    assert step["compile_s"] is None and step["first_step_s"] > 0  # eager: nothing to compile
    assert step["peak_mem_kind"] == "process_rss" and step["peak_mem_mib"] > 10
    assert step["gpu_util_pct"] is None and step["sm_clock_mhz"] is None and step["power_w"] is None
    assert step["recompiles_in_rounds"] == 0
    assert step["samples"] >= 2 and len(step["throttled_rounds"]) == 3
    # the tiny MLP per image: forward 2*(3072*32 + 32*10); backward: the first layer's weight gradient only (its
    # input needs none), the second layer's weight and input gradients
    assert step["train_flops_per_image"] == 2 * (3072 * 32 + 32 * 10) + 2 * 3072 * 32 + 2 * 2 * 32 * 10
    assert step["achieved_tflops"] > 0 and step["mfu"] is None and step["peak_tflops"] is None  # CPU: no peak
    assert step["backend_flags"]["cudnn_benchmark"] is True
    assert step["settings"]["rounds"] == 3
    for name, bench in benches.items():  # what other work took while each was measured
        load = bench["extra_info"]["machine_load"]
        if load is None:  # /proc/stat counts 10 ms ticks: a tiny loader's few milliseconds may see none
            assert name.startswith("test_dataloader["), name
            continue
        assert set(load) == {"others", "steal", "seconds"} and 0 <= load["others"] <= 1 and load["seconds"] >= 0
    assert benches[f"test_train_step[{TINY_ID}]"]["extra_info"]["machine_load"] is not None
    epoch = benches[f"test_epoch[{TINY_ID}]"]["extra_info"]
    assert epoch["images_per_epoch"] == 128 and len(epoch["epoch_s_rounds"]) == 2
    rates = [128 / s for s in epoch["epoch_s_rounds"]]
    assert min(rates) <= epoch["img_per_s"] <= max(rates)
    assert epoch["img_per_s_rounds"] == pytest.approx(rates, rel=1e-3)
    assert epoch["config"]["drop_last"] is True and epoch["config"]["num_workers"] == 0
    assert epoch["config"]["dataset_images"] == 128 and epoch["config"]["pin_memory"] is False
    assert epoch["config"]["optimizer_class"] == step["config"]["optimizer_class"] == "torch.optim.adam.Adam"
    loader = benches["test_dataloader[cpu-w0-nopin]"]["extra_info"]
    assert loader["images_per_round"] == 64 and loader["img_per_s"] > 0
    assert benches["test_dataloader[cpu-resident]"]["extra_info"]["config"]["resident"] is True
    machine = doc["machine_info"]["trainperf"]
    assert machine["torch"] and machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1
    assert machine["cuda_available"] is False and machine["driver"] is None


def test_cuda_cases_skip_with_a_reason(perf_suite):
    result = perf_suite.run("-m", "cuda and train_step", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) >= 1 and "passed" not in outcomes
    result.stdout.fnmatch_lines(["*SKIPPED*CUDA is not available*"])


def test_markers_and_ids_select_cases(perf_suite):
    result = perf_suite.run("--collect-only", "-q", "-m", "cuda and compile and train_step")
    result.stdout.fnmatch_lines(
        [
            "*test_train_step[[]cuda-default-fp32-contiguous-tinymodel.tiny-b32-foreach[]]",
            "*test_train_step[[]cuda-reduce_overhead-bf16-channels_last-tinymodel.tiny-b32-fused[]]",
        ]
    )
    assert "cpu-" not in result.stdout.str().split("trainperf environment")[0]
    result = perf_suite.run("--collect-only", "-q", "--strict-markers", "-m", "epoch", "-k", "cpu")
    result.stdout.fnmatch_lines([f"*test_epoch[[]{TINY_ID}[]]", "1/* tests collected*"])


def test_markers_are_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.cuda:*", "@pytest.mark.compile:*", "@pytest.mark.epoch: slow*"])


def test_unsupported_combination_is_skipped_with_reason(perf_suite):
    result = perf_suite.run(
        "-k",
        "train_step",
        "--trainperf-device=cpu",
        "--trainperf-compile=reduce-overhead",
        "--trainperf-precision=fp16",
        "-rs",
    )
    result.assert_outcomes(skipped=3)  # the default cases' CPU versions: 3 distinct format/optimizer mixes
    result.stdout.fnmatch_lines(["*unsupported combination*CUDA only*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--trainperf-rounds=0", "--trainperf-rounds: got '0'; expected an integer >= 1"),
        (
            "--trainperf-compile=fast",
            "--trainperf-compile: got 'fast'; expected a comma-separated list of eager, default*",
        ),
        ("--trainperf-model=nosuchnet", "--trainperf-model: unknown model 'nosuchnet'*"),
        ("--trainperf-model=nosuchmod:make", "--trainperf-model: cannot import module 'nosuchmod'*"),
        ("--trainperf-tf32=maybe", "--trainperf-tf32: got 'maybe'; expected 'on' or 'off'"),
        ("--trainperf-matrix=huge", "--trainperf-matrix: got 'huge'; expected 'default' or 'full'"),
    ],
)
def test_bad_option_is_a_usage_error(perf_suite, option, message):
    result = perf_suite.run(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--trainperf-batch-size=16,1024",),
            "trainperf: *::test_train_step?cpu-*-b1024-*?: batch 1024 needs 1024 images, more than the dataset's 512 "
            "(--trainperf-synthetic-images 512); lower --trainperf-batch-size or use more images (and * more)",
        ),
        (
            ("-m", "epoch", "--trainperf-epoch-images=16"),
            "trainperf: *::test_epoch?cpu-*-b32-*?: batch 32 needs 32 images, more than the epoch's 16 "
            "(--trainperf-epoch-images; 5,120 by default on CPU)*",
        ),
        (
            ("-m", "dataloader", "--trainperf-batch-size=600"),
            "trainperf: *::test_dataloader?cpu-w0-nopin?: batch 600 needs 600 images, more than the dataset's 512*",
        ),
    ],
)
def test_a_batch_the_data_cannot_fill_stops_the_run_before_any_test(perf_suite, args, message):
    result = perf_suite.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert "passed" not in result.stdout.str() and "Traceback" not in result.stdout.str()


def test_only_selected_benchmarks_are_checked_against_the_data(perf_suite):
    # A small epoch subset is no problem when no epoch benchmark is selected. (--setup-plan runs the checks made
    # before the first test and no test; --collect-only reads no data at all.)
    result = perf_suite.run("-m", "train_step and cpu", "--trainperf-epoch-images=16", "--setup-plan")
    assert result.ret == 0, result.stdout.str()


def test_a_custom_dataset_is_not_second_guessed(perf_suite):
    perf_suite.pytester.makeconftest(
        """
        import pytest
        import torch

        @pytest.fixture(scope="session")
        def trainperf_dataset():
            return torch.utils.data.TensorDataset(torch.zeros(2000, 3, 32, 32), torch.zeros(2000, dtype=torch.long))
        """
    )
    # 600 is more than the 512 synthetic images, but the tests read this 2,000-image dataset instead.
    result = perf_suite.run("-m", "train_step and cpu", "--trainperf-batch-size=600", "--setup-plan")
    assert result.ret == 0, result.stdout.str()


def test_a_custom_epoch_loader_still_needs_the_trainers_staged_batch(perf_suite):
    perf_suite.pytester.makeconftest(
        """
        import pytest
        import torch

        @pytest.fixture
        def trainperf_epoch_loader(trainperf_dataset):
            return torch.utils.data.DataLoader(trainperf_dataset, batch_size=8)
        """
    )
    result = perf_suite.run("-m", "epoch and cpu", "--trainperf-batch-size=600", "--setup-plan")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_epoch?cpu-*-b600-*?: batch 600 needs 600 images, more than the dataset's 512*"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="about benchmarks that skip for lack of CUDA")
def test_benchmarks_that_will_skip_need_no_data(perf_suite, tmp_path):
    from cifar_files import write_cifar10

    # The CUDA cases would not fit 100 images at batch 128, but they skip here.
    args = ("-m", "train_step", "--trainperf-device=cuda", "--trainperf-batch-size=128")
    result = perf_suite.run(*args, "--trainperf-synthetic-images=100", "-rs")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*CUDA is not available*"])
    # Nothing selected reads the data (compile time builds its own inputs): a damaged file is not even read.
    root = write_cifar10(tmp_path / "cifar", images_per_batch=40)
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:100])
    assert perf_suite.run("-m", "compile_time", f"--trainperf-data-dir={root}", "--collect-only").ret == 0


def test_ini_and_env_values_are_used_and_cli_wins(perf_suite, monkeypatch):
    perf_suite.pytester.makeini("[pytest]\ntrainperf_window_s = -1\n")
    result = perf_suite.run("--collect-only")
    result.stderr.fnmatch_lines(["*ini option trainperf_window_s: got '-1'; expected a positive number*"])
    result = perf_suite.run("--collect-only", "--trainperf-window-s=0.5")
    assert result.ret == 0
    monkeypatch.setenv("TRAINPERF_DATA_DIR", "/no/such/dir")
    result = perf_suite.run("--collect-only", "--trainperf-window-s=0.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*environment variable TRAINPERF_DATA_DIR: CIFAR-10 directory /no/such/dir does not exist*"]
    )


def test_require_cuda_turns_no_gpu_into_an_error(perf_suite, monkeypatch):
    monkeypatch.setenv("TRAINPERF_REQUIRE_CUDA", "1")
    result = perf_suite.run("-m", "cpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*TRAINPERF_REQUIRE_CUDA is set but CUDA is not available*"])
    result.assert_outcomes()


def test_real_cifar_directory_is_used(perf_suite, tmp_path):
    from cifar_files import write_cifar10

    root = write_cifar10(tmp_path / "cifar", images_per_batch=40)
    out = tmp_path / "result.json"
    result = perf_suite.run("-m", "cpu and train_step", f"--trainperf-data-dir={root}", f"--benchmark-json={out}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"data: {root}"])
    _, benches = _benchmarks(out)
    assert benches[f"test_train_step[{TINY_ID}]"]["extra_info"]["settings"]["data_dir"] == str(root)


def test_corrupt_cifar_directory_is_a_clear_error(perf_suite, tmp_path):
    from cifar_files import write_cifar10

    root = write_cifar10(tmp_path / "cifar", images_per_batch=40)
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:100])
    # The whole default selection, whose first tests (compile time, distributed) do not use the dataset fixture:
    # the files are read before any test runs, so a damaged one fails at once instead of after minutes.
    result = perf_suite.run(f"--trainperf-data-dir={root}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*trainperf: --trainperf-data-dir: CIFAR-10 data in *cannot read data_batch_2*"])
    assert "passed" not in result.stdout.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_batch_larger_than_the_real_cifar_directory_is_a_usage_error(perf_suite, tmp_path):
    from cifar_files import write_cifar10

    root = write_cifar10(tmp_path / "cifar", images_per_batch=4)
    result = perf_suite.run(f"--trainperf-data-dir={root}", "-m", "train_step", "--setup-plan")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*batch 32 needs 32 images, more than the dataset's 20 (CIFAR-10 in {root})*"])


def test_optimizer_and_epoch_loader_fixtures_can_be_overridden(perf_suite, tmp_path):
    perf_suite.pytester.makeconftest(
        """
        import pytest
        import torch

        @pytest.fixture
        def trainperf_optimizer():
            return lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9)

        @pytest.fixture
        def trainperf_epoch_loader(trainperf_case, trainperf_dataset):
            subset = torch.utils.data.Subset(trainperf_dataset, range(96))
            return torch.utils.data.DataLoader(subset, batch_size=trainperf_case.batch_size, drop_last=True)
        """
    )
    out = tmp_path / "result.json"
    result = perf_suite.run("-m", "cpu and (train_step or epoch)", f"--benchmark-json={out}")
    result.assert_outcomes(passed=2)
    _, benches = _benchmarks(out)
    step = benches[f"test_train_step[{TINY_ID}]"]["extra_info"]
    epoch = benches[f"test_epoch[{TINY_ID}]"]["extra_info"]
    assert step["config"]["optimizer_class"] == epoch["config"]["optimizer_class"] == "torch.optim.sgd.SGD"
    assert step["loss_last"] < step["loss_first"]
    # recorded as the loader is: 96 images, 3 whole batches of 32, no workers, not pinned
    assert epoch["images_per_epoch"] == 96
    assert epoch["config"]["dataset_images"] == 96 and epoch["config"]["num_workers"] == 0


def test_model_fixture_can_be_overridden(perf_suite, tmp_path):
    perf_suite.pytester.makeconftest(
        """
        import pytest
        from torch import nn

        @pytest.fixture
        def trainperf_model(trainperf_case):
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
        """
    )
    out = tmp_path / "result.json"
    result = perf_suite.run("-m", "cpu and train_step", f"--benchmark-json={out}")
    result.assert_outcomes(passed=1)
    _, benches = _benchmarks(out)
    assert benches[f"test_train_step[{TINY_ID}]"]["extra_info"]["loss_last"] > 0


def test_a_model_that_does_not_learn_fails_and_is_not_saved(perf_suite, tmp_path):
    perf_suite.pytester.makeconftest(
        """
        import pytest
        import torch
        from torch import nn

        class Frozen(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.zeros(1))

            def forward(self, x):
                return torch.zeros(x.shape[0], 10) + 0.0 * self.w

        @pytest.fixture
        def trainperf_model(trainperf_case):
            return Frozen()
        """
    )
    out = tmp_path / "result.json"
    result = perf_suite.run("-m", "cpu and train_step", f"--benchmark-json={out}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*loss did not go down*the benchmark is not training*"])
    assert "Traceback" not in result.stdout.str()
    _, benches = _benchmarks(out)
    assert benches == {}


def test_out_of_memory_fails_that_case_only(perf_suite):
    perf_suite.pytester.makeconftest(
        """
        import pytest
        import torch
        from torch import nn

        class Hungry(nn.Linear):
            def forward(self, x):
                if x.shape[0] == 64:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
                return super().forward(x.flatten(1))

        @pytest.fixture
        def trainperf_model(trainperf_case):
            return Hungry(3 * 32 * 32, 10)
        """
    )
    # the failing case never reaches its timed rounds, so pytest-benchmark notes its fixture went unused
    result = perf_suite.run(
        "-m",
        "cpu and train_step",
        "--trainperf-batch-size=32,64",
        "-W",
        "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*CUDA out of memory in train_step[[]cpu-*-b64-foreach[]]: *Tried to allocate*"])


def test_autosave_is_readable_by_pytest_benchmark_compare(perf_suite, tmp_path):
    storage = tmp_path / "storage"
    for _ in range(2):
        result = perf_suite.run(
            "-m", "cpu and train_step", "--benchmark-autosave", f"--benchmark-storage=file://{storage}"
        )
        result.assert_outcomes(passed=1)
    saved = sorted(storage.rglob("*.json"))
    assert len(saved) == 2
    extra = json.loads(saved[0].read_text())["benchmarks"][0]["extra_info"]
    assert extra["img_per_s"] > 0 and len(extra["img_per_s_rounds"]) == 3
    compare = subprocess.run(
        [
            str(Path(sys.executable).with_name("pytest-benchmark")),
            f"--storage=file://{storage}",
            "compare",
            "0001",
            "0002",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compare.returncode == 0, compare.stderr
    assert "test_train_step" in compare.stdout


def test_compiled_cpu_case_and_its_compile_time(perf_suite, tmp_path):
    out = tmp_path / "result.json"
    compiled = "cpu-default-fp32-contiguous-tinymodel.tiny-b32-foreach"
    result = perf_suite.run(
        "-m",
        "cpu and compile and (train_step or compile_time)",
        "--trainperf-device=cpu",
        "--trainperf-compile=default",
        "--trainperf-precision=fp32",
        "--trainperf-memory-format=contiguous",
        "--trainperf-optimizer=foreach",
        f"--benchmark-json={out}",
    )
    result.assert_outcomes(passed=2)
    _, benches = _benchmarks(out)
    step = benches[f"test_train_step[{compiled}]"]["extra_info"]
    # the compile happened in warm-up: its cost is reported, and nothing recompiled in the rounds
    assert step["compile_s"] > 0.5 and step["first_step_s"] > step["step_ms"] / 1e3
    assert step["recompiles_in_rounds"] == 0 and step["loss_last"] < step["loss_first"]
    compile_time = benches[f"test_compile_time[{compiled}]"]["extra_info"]
    assert compile_time["trainperf_kind"] == "compile_time"
    assert compile_time["compile_cold_s"] > compile_time["compile_warm_s"] > 0
    assert compile_time["process_cold_s"] > compile_time["compile_cold_s"]


def test_no_compile_support_skips_compiled_cases(perf_suite):
    perf_suite.pytester.makeconftest(
        """
        import pytest
        import trainperf.machine.environment

        @pytest.fixture(autouse=True)
        def no_compiler(monkeypatch):
            monkeypatch.setattr(trainperf.machine.environment, "compile_unsupported_reason",
                                lambda device: "torch.compile is not supported on this platform (test)")
        """
    )
    result = perf_suite.run(
        "-m",
        "cpu and train_step",
        "--trainperf-device=cpu",
        "--trainperf-compile=eager,default",
        "--trainperf-precision=fp32",
        "--trainperf-memory-format=contiguous",
        "--trainperf-optimizer=foreach",
        "-rs",
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*torch.compile is not supported on this platform (test)*"])
