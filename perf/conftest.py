"""perf/ runs report library warnings (a deprecation in a newer torch, NVML missing) instead of failing on them,
also when the caller's own filters turn warnings into errors (tests/conftest.py does, for the project's tests)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("default"))
