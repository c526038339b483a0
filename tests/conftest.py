from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytester's in-process runs restore sys.modules afterwards; torch cannot be imported twice in one process,
# so it is imported here, before any snapshot is taken.
import torch
import torch._dynamo.repro.after_dynamo
import torch._dynamo.utils
import torch._inductor.compile_fx
import torch.distributed  # noqa: F401
import torchvision  # noqa: F401

# The same goes for trainperf's lazily imported modules: a module re-imported after a restore would give two
# copies of its exception classes.
import trainperf.distributed.launch
import trainperf.machine.environment
import trainperf.measurement.compile_time
import trainperf.measurement.data
import trainperf.measurement.measure
import trainperf.measurement.models
import trainperf.measurement.training
import trainperf.telemetry  # noqa: F401

PERF_DIR = Path(__file__).parent.parent / "perf"

# Warnings are errors in the project's own tests. Not in the ini file: there it would also apply to `pytest perf/`
# outside its tests (collection, session end), where a library's warning (a deprecation in a newer torch, an old
# pytest-benchmark's utcnow on Python 3.12) would stop a benchmark run or lose its JSON.
WARNINGS_ARE_ERRORS = pytest.mark.filterwarnings(
    "error",
    # pytest-benchmark's notices ("fixture was not used") are information about the run, not defects.
    "default::pytest_benchmark.logger.PytestBenchmarkWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        if tests_dir in Path(item.path).parents:
            # Prepended, so a test's own filterwarnings mark is applied after this one and wins.
            item.add_marker(WARNINGS_ARE_ERRORS, append=False)


# The project's own switches for its tests, not settings of a run: kept.
TEST_SWITCHES = frozenset({"TRAINPERF_REGEN_GOLDEN"})


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the person's own settings or files: their TRAINPERF_* variables (a data directory, a required
    GPU, a deadline) and PYTEST_ADDOPTS are removed for in-process runs and every child process, and the working
    directory is an empty one, so nothing relative to it finds this checkout's baselines/ or .benchmarks/.
    tests/test_hermetic.py proves it with hostile ones in place."""
    for name in [n for n in os.environ if n.startswith("TRAINPERF_") and n not in TEST_SWITCHES]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


TINY_MODEL = """
import torch
import torch.distributed  # noqa: F401
from torch import nn


def tiny(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 32), nn.ReLU(), nn.Linear(32, num_classes))
"""

# Small enough that a whole pytester run of the CPU suite takes seconds.
TINY_OPTIONS = (
    "--trainperf-model=tinymodel:tiny",
    "--trainperf-synthetic-images=512",
    "--trainperf-batch-size=32",
    "--trainperf-warmup-steps=2",
    "--trainperf-rounds=3",
    "--trainperf-steps=3",
    "--trainperf-epoch-images=128",
    "--trainperf-epoch-rounds=2",
    "--trainperf-loader-workers=0",
    "--trainperf-loader-batches=2",
    "--trainperf-loader-rounds=2",
    "-p",
    "no:cacheprovider",
)


class PerfSuite:
    """A copy of the real perf/ suite inside a pytester directory, with a tiny model module beside it."""

    def __init__(self, pytester: pytest.Pytester, *, distributed: bool = False) -> None:
        self.pytester = pytester
        for source in PERF_DIR.glob("test_*.py"):
            # The distributed benchmark starts torchrun per case: only the tests about it copy it.
            if distributed or source.stem != "test_distributed":
                pytester.makepyfile(**{source.stem: source.read_text(encoding="utf-8")})
        pytester.makepyfile(tinymodel=TINY_MODEL)
        pytester.syspathinsert()

    def run(self, *args: str, tiny: bool = True) -> pytest.RunResult:
        options = TINY_OPTIONS if tiny else ()
        return self.pytester.runpytest(*options, *args)


@pytest.fixture
def perf_suite(pytester: pytest.Pytester) -> PerfSuite:
    return PerfSuite(pytester)
