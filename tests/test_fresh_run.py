"""fresh_run.child_arguments: what of the parent's command line a fresh benchmark process gets."""

from __future__ import annotations

import pytest

from trainperf.gate.fresh_run import child_arguments, command

VALUED = {"--trainperf-tolerance", "--trainperf-rounds", "--trainperf-model", "--trainperf-baseline-dir"}


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (["--trainperf-rounds", "3"], ["--trainperf-rounds", "3"]),
        (["--trainperf-rounds=3"], ["--trainperf-rounds=3"]),
        (["--trainperf-strict", "perf/"], ["--trainperf-strict"]),
        (["--trainperf-strict", "--trainperf-rounds", "3"], ["--trainperf-strict", "--trainperf-rounds", "3"]),
        (["-p", "tinymodel"], ["-p", "tinymodel"]),
        (["-pno:randomly"], ["-pno:randomly"]),
        (["-o", "xfail_strict=true"], ["-o", "xfail_strict=true"]),
        (["--override-ini=xfail_strict=true"], ["--override-ini=xfail_strict=true"]),
        (["-W", "error::DeprecationWarning"], ["-W", "error::DeprecationWarning"]),
        (["perf/", "perf/test_train.py::test_train_step"], []),
        (["-m", "cpu and not slow", "-k", "resnet18"], []),
        (["--benchmark-json", "out.json", "--benchmark-compare=0001", "--benchmark-autosave"], []),
        (["-q", "-x", "--tb=short"], []),
    ],
)
def test_child_arguments(args, kept):
    assert child_arguments(args, VALUED) == kept


def test_child_arguments_on_a_whole_command_line():
    args = [
        "perf/",
        "-m",
        "cpu",
        "--trainperf-model",
        "tinymodel:tiny",
        "-k",
        "train",
        "--benchmark-json",
        "run.json",
        "--trainperf-tolerance=0.1",
        "-p",
        "no:cacheprovider",
        "--trainperf-update-baselines",
        "-o",
        "console_output_style=classic",
        "--benchmark-disable-gc",
        "-pmyplugin",
    ]
    assert child_arguments(args, VALUED) == [
        "--trainperf-model",
        "tinymodel:tiny",
        "--trainperf-tolerance=0.1",
        "-p",
        "no:cacheprovider",
        "--trainperf-update-baselines",
        "-o",
        "console_output_style=classic",
        "-pmyplugin",
    ]


def test_a_value_that_looks_like_a_path_is_kept_with_its_option():
    assert child_arguments(["--trainperf-baseline-dir", "perf/baselines", "perf/"], VALUED) == [
        "--trainperf-baseline-dir",
        "perf/baselines",
    ]


def test_command_selects_node_ids_and_writes_json(tmp_path):
    cmd = command(["perf/test_a.py::test_a[x]"], ["-p", "tinymodel"], tmp_path / "f.json", tmp_path, None)
    assert cmd[1:4] == ["-m", "pytest", f"--rootdir={tmp_path}"]
    assert cmd[-3:] == ["tinymodel", f"--benchmark-json={tmp_path / 'f.json'}", "perf/test_a.py::test_a[x]"]
    with_ini = command([], [], tmp_path / "f.json", tmp_path, tmp_path / "pytest.ini")
    assert with_ini[3:5] == ["-c", str(tmp_path / "pytest.ini")]
