"""Fixtures that build each case: settings, dataset, model, trainer and the measuring runner.

Any of them can be overridden in a conftest.py (a tiny ``trainperf_model`` for tests, a team's own dataset).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from trainperf.measurement.cases import Case, DistributedCase, LoaderCase
from trainperf.pytest_edge import errors
from trainperf.pytest_edge.runner import Runner, call_or_fail, check_runnable, release_device_memory
from trainperf.pytest_edge.state import state_of
from trainperf.settings import Settings

if TYPE_CHECKING:
    from torch import nn

    from trainperf.measurement.training import OptimizerFactory, Trainer


@pytest.fixture(scope="session")
def trainperf_settings(pytestconfig: pytest.Config) -> Settings:
    """The parsed --trainperf-* options."""
    return state_of(pytestconfig).settings


@pytest.fixture(scope="session")
def trainperf_dataset(trainperf_settings: Settings) -> Any:
    """CIFAR-10 from --trainperf-data-dir, else the synthetic CIFAR-shaped set, with the training transforms."""
    from trainperf.measurement import data

    s = trainperf_settings
    try:
        return data.training_set(s.data_dir, s.synthetic_images, s.seed)
    except data.DataError as exc:
        # Bad input never gets here: session_start read these files before the first test and refused them as a
        # usage error. Files changed since then do, and a fixture can stop the run only through pytest.exit.
        message = errors.text("--trainperf-data-dir", *errors.split_expected(str(exc)))
        pytest.exit(message, returncode=errors.EXIT_STATUS)


@pytest.fixture
def trainperf_case(request: pytest.FixtureRequest) -> Case:
    """The training case of this test (parametrized from the case matrix)."""
    return request.param


@pytest.fixture
def trainperf_compile_case(request: pytest.FixtureRequest) -> Case:
    """A compiled training case, for compile-time benchmarks."""
    return request.param


@pytest.fixture
def trainperf_loader_case(request: pytest.FixtureRequest) -> LoaderCase:
    """A DataLoader configuration, for loader benchmarks."""
    return request.param


@pytest.fixture
def trainperf_ddp_case(request: pytest.FixtureRequest) -> DistributedCase:
    """A training case at one world size, for data-parallel benchmarks."""
    return request.param


@pytest.fixture
def trainperf_model(trainperf_case: Case, trainperf_settings: Settings) -> Iterator[nn.Module]:
    """A freshly initialised model for the case (seeded); its device memory is released after the case."""
    import torch

    from trainperf.measurement.models import build_model

    check_runnable(trainperf_case.device, trainperf_settings, trainperf_case)
    torch.manual_seed(trainperf_settings.seed)
    model = build_model(trainperf_case.model)
    yield model
    # Torn down after the trainer (which holds the same module), so everything of the case is unreferenced now.
    del model
    release_device_memory(trainperf_case.device, trainperf_case.compiled)


@pytest.fixture
def trainperf_optimizer(trainperf_case: Case) -> OptimizerFactory:
    """Builds the case's optimizer from the model's parameters (already on the device): Adam, lr 3e-4, in the
    case's implementation (fused, foreach or for-loop). Override it to benchmark another optimizer."""
    from trainperf.measurement.training import make_optimizer

    return lambda params: make_optimizer(trainperf_case, params)


@pytest.fixture
def trainperf_trainer(
    trainperf_case: Case,
    trainperf_model: nn.Module,
    trainperf_optimizer: OptimizerFactory,
    trainperf_dataset: Any,
    trainperf_settings: Settings,
) -> Trainer:
    """The case's model, optimizer and step on its device, with a few real batches staged there."""
    from trainperf.measurement import data
    from trainperf.measurement.training import STAGED_BATCHES, build_trainer, stage_batches

    case = trainperf_case
    check_runnable(case.device, trainperf_settings, case)

    def build() -> Trainer:
        trainer = build_trainer(case, trainperf_model, optimizer=trainperf_optimizer)
        loader = data.make_loader(
            trainperf_dataset, case.batch_size, seed=trainperf_settings.seed, limit=case.batch_size * STAGED_BATCHES
        )
        stage_batches(trainer, loader, STAGED_BATCHES)
        return trainer

    return call_or_fail(f"setup of {case.id}", build)


def _auto_workers(device: str) -> int:
    """Loader workers when --trainperf-num-workers is not given: none on CPU (they would compete with training
    for the cores), up to 8 beside a GPU."""
    return 0 if device == "cpu" else min(8, os.cpu_count() or 1)


@pytest.fixture
def trainperf_epoch_loader(trainperf_case: Case, trainperf_dataset: Any, trainperf_settings: Settings) -> Any:
    """The DataLoader of the case's epoch benchmark: shuffled, drop_last, persistent workers
    (``--trainperf-num-workers``, else by device), pinned memory on CUDA, and on CPU the first
    ``--trainperf-epoch-images`` images (5,120 by default) so a laptop run stays short. Override it to measure
    another input pipeline; what is recorded is read off the loader."""
    from trainperf.measurement import data
    from trainperf.measurement.batch_fit import epoch_limit

    s, case = trainperf_settings, trainperf_case
    check_runnable(case.device, s, case)
    workers = s.num_workers if s.num_workers is not None else _auto_workers(case.device)
    limit = epoch_limit(s, case.device)
    return data.make_loader(
        trainperf_dataset,
        case.batch_size,
        num_workers=workers,
        pin_memory=case.device == "cuda",
        persistent_workers=True,  # applies only with workers
        seed=s.seed,
        limit=limit,
    )


@pytest.fixture
def trainperf_runner(benchmark: Any, request: pytest.FixtureRequest, trainperf_settings: Settings) -> Runner:
    """Runs a measurement and records it in the benchmark's extra_info."""
    return Runner(benchmark, request, trainperf_settings)
