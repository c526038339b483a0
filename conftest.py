"""Root conftest: lets `PYTHONPATH=src pytest perf/` work without installing (the GPU check script does that).

When trainperf is installed, its pytest11 entry point has loaded the plugin already and this does nothing.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path


def _entry_point_loads_plugin() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(ep.value == "trainperf.plugin" for ep in entry_points(group="pytest11"))


if not _entry_point_loads_plugin():
    src = str(Path(__file__).parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    pytest_plugins = ["trainperf.plugin"]
