"""torch.compile cost per compiled case: cold cache versus warm cache, each in a fresh process."""

from __future__ import annotations

import pytest


@pytest.mark.compile_time
def test_compile_time(trainperf_runner, trainperf_compile_case):
    trainperf_runner.compile_time(trainperf_compile_case)
