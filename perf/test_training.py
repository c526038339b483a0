"""Training benchmarks: step throughput and whole epochs, for every case of the matrix."""

from __future__ import annotations

import pytest


@pytest.mark.train_step
def test_train_step(trainperf_runner, trainperf_trainer):
    trainperf_runner.train_step(trainperf_trainer)


@pytest.mark.epoch
def test_epoch(trainperf_runner, trainperf_trainer, trainperf_epoch_loader):
    trainperf_runner.epoch(trainperf_trainer, trainperf_epoch_loader)
