"""Every private attribute of pytest and pytest-benchmark that trainperf still reads or sets, in one place, each
with why no public route exists. When a release renames one, this is the only module to change; each falls back
to the safe answer when the attribute is missing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any


def benchmarks_timed(config: Any) -> bool:
    """Whether pytest-benchmark times rounds in this run.

    It also turns itself off (one untimed call per test) under xdist and when it cannot import its statistics,
    and only its session object knows: ``config._benchmarksession`` is not public, and pytest-benchmark has no
    hook or fixture that says so before the benchmarks run. Without it, the options say.
    """
    if hasattr(config, "workerinput"):  # an xdist worker (pytest-xdist's documented marker)
        return False
    session = getattr(config, "_benchmarksession", None)
    if session is not None and hasattr(session, "disabled"):
        disabled = bool(session.disabled)
    else:
        disabled = config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False)
    return not disabled and not config.getoption("benchmark_skip", False)


def discard_numbers(benchmark: Any) -> None:
    """Keep a failed case's numbers out of pytest-benchmark's saved JSON.

    pytest-benchmark sets ``has_error`` itself when the benchmarked function raises; trainperf fails a case after
    its rounds ran (an untrustworthy measurement), which pytest-benchmark has no public way to be told.
    """
    benchmark.has_error = True


def own_fixture(item: Any, name: str, module: str) -> bool:
    """Whether ``item`` gets fixture ``name`` from ``module`` (not a conftest.py override).

    pytest exposes which fixture definitions serve an item only through ``item._fixtureinfo``; the public
    ``request.getfixturevalue`` would run the fixture (here: build a dataset) before any test runs.
    """
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get(name)
    return bool(defs) and getattr(defs[-1].func, "__module__", None) == module


def compared_files(config: Any, name: str) -> list[Path] | None:
    """The saved-run files ``--benchmark-compare NAME`` selects, found as pytest-benchmark finds them; None when
    that cannot be told (no benchmark session, runs not stored in files).

    Only ``config._benchmarksession.storage`` knows where runs are kept (``--benchmark-storage``) and how NAME
    matches them; pytest-benchmark hands the compare hook each document it loaded, never the file, and never
    one it failed to load.
    """
    storage = getattr(getattr(config, "_benchmarksession", None), "storage", None)
    if type(storage).__name__ != "FileStorage":
        return None
    try:
        return [Path(found) for found in storage.query(name)]
    except (ValueError, OSError):
        return None


def uncaptured(capture: Any) -> contextlib.AbstractContextManager[Any]:
    """Output capturing suspended while a line is written during a test.

    During a test pytest captures file descriptor 1, terminal reporter's writes included; its capture
    manager's ``global_and_fixture_disabled`` (what pytest's own live logging uses) is the only way around it:
    ``capsys.disabled()`` would need the capsys fixture, which clashes with a test's capfd. Without it the line
    lands in the test's captured output instead.
    """
    disabled = getattr(capture, "global_and_fixture_disabled", None)
    return disabled() if callable(disabled) else contextlib.nullcontext()
