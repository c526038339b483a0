"""Before any benchmark runs: read the CIFAR-10 files and check that every selected benchmark that will run here
finds a whole batch. Plugin-side (it reads pytest items); imported only once trainperf benchmarks are collected.
"""

from __future__ import annotations

from typing import Any

import pytest

from trainperf.pytest_edge.compat import own_fixture
from trainperf.pytest_edge.errors import bad_input, split_expected
from trainperf.pytest_edge.parametrize import CASE_FIXTURES
from trainperf.settings import Settings


def _default_fixture(item: pytest.Item, name: str) -> bool:
    """Whether ``item`` gets trainperf's own ``name`` fixture (not a conftest.py override)."""
    return own_fixture(item, name, "trainperf.pytest_edge.fixtures")


def _benchmark_kind(item: pytest.Item) -> tuple[str, Any] | None:
    """Which benchmark ``item`` is, as batch_fit names them, and its case; None when it reads no data of ours."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    fixtures = getattr(item, "fixturenames", ())
    if "trainperf_ddp_case" in params:  # the ranks build the dataset from the settings themselves
        return "ddp", params["trainperf_ddp_case"]
    if not _default_fixture(item, "trainperf_dataset"):
        return None
    if "trainperf_loader_case" in params:
        return "dataloader", params["trainperf_loader_case"]
    if "trainperf_case" not in params:
        return None
    if "trainperf_epoch_loader" in fixtures and _default_fixture(item, "trainperf_epoch_loader"):
        return "epoch", params["trainperf_case"]  # its limit is within the dataset, so this covers the trainer too
    if "trainperf_trainer" in fixtures and _default_fixture(item, "trainperf_trainer"):
        return "train_step", params["trainperf_case"]  # staging batches from the dataset
    return None


def _runnable_here(case: Any) -> bool:
    """Whether this machine runs ``case`` rather than skipping it (a skipped case needs no data)."""
    from trainperf.distributed.case import skip_reason as ddp_skip_reason
    from trainperf.measurement.cases import Case, DistributedCase
    from trainperf.measurement.runnable import skip_reason

    if isinstance(case, DistributedCase):
        return ddp_skip_reason(case) is None
    return skip_reason(case.device, case if isinstance(case, Case) else None) is None


def _reads_data(item: pytest.Item) -> bool:
    """Whether ``item`` will read trainperf's dataset here: through its own fixture, in a case that runs (a test
    of a conftest.py's making reads it too, without a batch size to check)."""
    if not _default_fixture(item, "trainperf_dataset"):
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    cases = [params[name] for name in CASE_FIXTURES if name in params]
    if not cases:
        return True
    return cases[0] is not None and _runnable_here(cases[0])  # None: the empty matrix's skipped parameter


def _images(settings: Settings) -> tuple[int, str]:
    """How many training images the benchmarks read, and from where; a damaged CIFAR-10 file stops the run."""
    if settings.data_dir is None:
        return settings.synthetic_images, f"--trainperf-synthetic-images {settings.synthetic_images}"
    from trainperf.measurement.datadir import DataError, check_cifar10_contents

    try:
        images = check_cifar10_contents(settings.data_dir)
    except DataError as exc:
        bad_input("--trainperf-data-dir", *split_expected(str(exc)))
    return images, f"CIFAR-10 in {settings.data_dir}"


def check_data(items: list[pytest.Item], settings: Settings) -> None:
    """Read the CIFAR-10 files and check that every benchmark that will run finds a whole batch, before any
    runs: a corrupt file or an oversized batch must not cost minutes of compiling and launching first (and a
    bad input found before the first test is a usage error, said in one style: ``errors``). Nothing is read when
    no selected test that runs here uses the data."""
    from trainperf.measurement import batch_fit

    needs = []
    for item in items:
        kind = _benchmark_kind(item)
        required = batch_fit.need(kind[0], kind[1], settings) if kind and _runnable_here(kind[1]) else None
        if required:
            needs.append((item.nodeid, required))
    if not needs and not any(_reads_data(item) for item in items):
        return
    images, source = _images(settings)
    problems = [found for test, required in needs if (found := batch_fit.problem(test, required, images, source))]
    if problems:
        test, _, problem = problems[0].partition(": ")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        bad_input(test, f"{problem}{more}", "a whole batch for every selected benchmark that runs here")
