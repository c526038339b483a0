"""Data-parallel training throughput: DistributedDataParallel under torchrun, one launch per world size."""

from __future__ import annotations


def test_ddp_train_step(trainperf_runner, trainperf_ddp_case):
    trainperf_runner.ddp_train_step(trainperf_ddp_case)
