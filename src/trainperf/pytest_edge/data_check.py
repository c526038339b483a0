"""Before any benchmark runs: read the CIFAR-10 files and check that every selected benchmark that will run here
finds a whole batch. Plugin-side (it reads pytest items); imported only once trainperf benchmarks are collected.
"""

from __future__ import annotations

from typing import Any

import pytest

from trainperf.pytest_edge.compat import own_fixture
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


def check_data(items: list[pytest.Item], settings: Settings) -> None:
    """Read the CIFAR-10 files and check that every benchmark that will run finds a whole batch, before any
    runs: a corrupt file or an oversized batch must not cost minutes of compiling and launching first. Nothing
    is read when no selected benchmark that runs here uses the data."""
    from trainperf.measurement import batch_fit

    needs = []
    for item in items:
        kind = _benchmark_kind(item)
        required = batch_fit.need(kind[0], kind[1], settings) if kind and _runnable_here(kind[1]) else None
        if required:
            needs.append((item.nodeid, required))
    if not needs:
        return
    images, source = settings.synthetic_images, f"--trainperf-synthetic-images {settings.synthetic_images}"
    if settings.data_dir is not None:
        from trainperf.measurement.datadir import DataError, check_cifar10_contents

        try:
            images = check_cifar10_contents(settings.data_dir)
        except DataError as exc:
            pytest.exit(f"trainperf data dir: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        source = f"CIFAR-10 in {settings.data_dir}"
    problems = [found for test, required in needs if (found := batch_fit.problem(test, required, images, source))]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        pytest.exit(f"trainperf: {problems[0]}{more}", returncode=pytest.ExitCode.USAGE_ERROR)
