"""The input pipeline alone: DataLoader workers x pin_memory, and a device-resident reference loader."""

from __future__ import annotations

import pytest


@pytest.mark.dataloader
def test_dataloader(trainperf_runner, trainperf_loader_case, trainperf_dataset):
    trainperf_runner.dataloader(trainperf_loader_case, trainperf_dataset)
