"""trainperf: training-throughput benchmarks and a regression gate for PyTorch, on pytest-benchmark."""

from __future__ import annotations

__version__ = "0.1.0"
