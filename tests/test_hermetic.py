"""No test reads the person's baselines/, .benchmarks/, data directory or TRAINPERF_* settings.

The proof runs the suite's own tests that start `pytest perf/` or the scripts, inside a scratch copy of this
checkout where every one of those is hostile: a baseline for this machine and a saved run that claim far more
img/s than anything here measures (a test that read either would see REGRESSED), and TRAINPERF_* variables that
point at a broken data directory and require a GPU.  They must all pass.  Before the tests were made hermetic,
the README's own "record a baseline" step made the GPU-check rehearsal fail this way.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from trainperf.gate import baseline as bl
from trainperf.gate.runs import load_run
from trainperf.machine.environment import environment_info
from trainperf.machine.key import machine_key
from trainperf.measurement.cases import build_matrix, loader_matrix
from trainperf.measurement.datadir import BASE_FOLDER, META_FILE, TRAIN_FILES
from trainperf.results import Epoch, Identity, Loader, Rates, Result, TrainStep

ROOT = Path(__file__).resolve().parent.parent
# The tests that run `pytest perf/` or a script from the checkout (the GPU-check rehearsal, the collect-only
# check), and a pytester run of the tiny CPU suite, which reads the environment like any run: about 100 s.
SELECTION = (
    "tests/test_scripts.py::test_gpu_check_rehearsed_on_the_cpu_cases_prints_every_table",
    "tests/test_architecture.py::test_listing_the_benchmarks_reads_no_baseline_or_data_and_asks_no_gpu",
    "tests/test_suite.py::test_cpu_suite_runs_and_records_metrics",
)
INNER_PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-rfEs")
# Far above any CPU measurement: judged against it, every benchmark reads REGRESSED.
HOSTILE_IMG_PER_S = 1e9
KINDS: dict[str, type[Result]] = {"test_train_step": TrainStep, "test_epoch": Epoch, "test_dataloader": Loader}
# Left out when the checkout is not a git repository (an unpacked source archive): environments and caches.
NOT_SOURCE = (".git", ".venv*", "__pycache__", "*.egg-info", ".*_cache", ".benchmarks")


def _copy_checkout(dest: Path) -> None:
    """The checkout's tracked and not-ignored files, as they are in the working tree."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
        return
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _hostile_names() -> list[str]:
    """Every benchmark the selected tests can run on this machine, and more: the CPU cases at the batch sizes
    and models the tests use, and every loader worker count."""
    axes = {"device": ("cpu",), "model": ("resnet18", "resnet18_cifar", "tinymodel:tiny")}
    training = build_matrix("default", {**axes, "batch_size": (4, 8, 16, 32, 64, 128, 256)})
    loaders = loader_matrix(["cpu"], range(17))
    steps = [f"{test}[{case.id}]" for test in ("test_train_step", "test_epoch") for case in training]
    return steps + [f"test_dataloader[{case.id}]" for case in loaders]


def _record(name: str) -> Result:
    test, _, case_id = name.partition("[")
    rates = Rates(img_per_s=HOSTILE_IMG_PER_S, img_per_s_rounds=(HOSTILE_IMG_PER_S,) * 3)
    return KINDS[test](identity=Identity(case_id=case_id.rstrip("]")), throughput=rates)


def _hostile_baseline(directory: Path, key: str, names: list[str]) -> Path:
    rounds = (HOSTILE_IMG_PER_S,) * 3
    entries = {name: bl.Entry(HOSTILE_IMG_PER_S, rounds, runs=rounds) for name in names}
    path = bl.baseline_path(directory, key)
    directory.mkdir(parents=True, exist_ok=True)
    bl.write_atomic(path, bl.Baseline(key, entries))
    return path


def _hostile_autosave(copy: Path, names: list[str]) -> Path:
    """A saved run of this machine where pytest-benchmark looks for one (``--benchmark-compare`` with no storage)."""
    seconds = 1 / HOSTILE_IMG_PER_S
    stats = {"min": seconds, "max": seconds, "mean": seconds, "median": seconds, "stddev": 0.0, "iqr": 0.0}
    stats |= {"q1": seconds, "q3": seconds, "ld15iqr": seconds, "hd15iqr": seconds, "ops": HOSTILE_IMG_PER_S}
    stats |= {"rounds": 3, "iterations": 1, "total": 3 * seconds, "outliers": "0;0"}
    stats |= {"iqr_outliers": 0, "stddev_outliers": 0}
    benchmarks = [
        {"name": n, "fullname": f"perf/x.py::{n}", "group": None, "params": None, "param": n.partition("[")[2][:-1]}
        | {"extra_info": _record(n).to_extra_info(), "options": {}, "stats": stats}
        for n in names
    ]
    doc = {"machine_info": {"trainperf": environment_info()}, "commit_info": {}, "benchmarks": benchmarks}
    doc |= {"datetime": "2026-01-01T00:00:00+00:00", "version": version("pytest-benchmark")}
    python = ".".join(platform.python_version_tuple()[:2])
    # pytest-benchmark's folder for this interpreter, e.g. Linux-CPython-3.11-64bit
    machine = f"{platform.system()}-{platform.python_implementation()}-{python}-{platform.architecture()[0]}"
    path = copy / ".benchmarks" / machine / "0001_hostile.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _hostile_data_dir(where: Path) -> Path:
    """A CIFAR-10 directory whose files are all there (the options' check passes) and all garbage."""
    (where / BASE_FOLDER).mkdir(parents=True)
    for name in (*TRAIN_FILES, META_FILE):
        (where / BASE_FOLDER / name).write_bytes(b"not a pickle")
    return where


def test_the_suites_own_tests_pass_with_hostile_baselines_saved_runs_and_settings(tmp_path):
    copy = tmp_path / "checkout"
    _copy_checkout(copy)
    key = machine_key(environment_info())
    names = _hostile_names()
    # Only the files that are in place and hostile prove anything: a wrong key or a malformed file would not be
    # read as a baseline at all.
    assert bl.load(_hostile_baseline(copy / "baselines", key, names)).machine_key == key
    elsewhere = _hostile_baseline(tmp_path / "env-baselines", key, names).parent
    saved = load_run(_hostile_autosave(copy, names))
    assert saved.key == key and set(saved.results) == set(names)
    rehearsed = ("test_train_step[cpu-eager-fp32-contiguous-resnet18-b16-foreach]", "test_dataloader[cpu-w0-nopin]")
    assert set(rehearsed) <= set(names)
    env = {
        **os.environ,
        "PYTHONPATH": str(copy / "src"),
        "TRAINPERF_DATA_DIR": str(_hostile_data_dir(tmp_path / "garbage-data")),
        "TRAINPERF_BASELINE_DIR": str(elsewhere),
        "TRAINPERF_REQUIRE_CUDA": "1",
    }
    whose = subprocess.run(
        [sys.executable, "-c", "import trainperf; print(trainperf.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(whose.stdout.strip()).is_relative_to(copy / "src"), "the copy's own code must be the one tested"
    done = subprocess.run(
        [*INNER_PYTEST, f"--basetemp={tmp_path / 'inner'}", *SELECTION],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0 and summary.startswith(f"{len(SELECTION)} passed"), done.stdout + done.stderr
    assert "skipped" not in summary  # a skipped test is not a passing one
