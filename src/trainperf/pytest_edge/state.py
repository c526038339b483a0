"""The one object a pytest run keeps for trainperf, in ``config.stash``: the settings, the benchmarks collected,
the finished results, the runs ``--benchmark-compare`` loaded, the gate's state and its outcome.

Created on first use (pytest-benchmark may hand over a compared run before trainperf's own ``pytest_configure``
runs), with the settings parsed then, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from trainperf.pytest_edge.options import settings_from_config
from trainperf.settings import Settings

if TYPE_CHECKING:
    from trainperf.gate.judging import GateState, Outcome
    from trainperf.pytest_edge.runner import Finished


@dataclass
class PluginState:
    settings: Settings
    results: list[Finished] = field(default_factory=list)
    # Whether this run collected trainperf benchmarks; None until collection finished.
    active: bool | None = None
    nodeids: frozenset[str] = frozenset()  # the trainperf benchmarks collected (whose skips its summary counts)
    # Bad input found where raising would only fail a test or a module (pytest_generate_tests): refused, in the
    # one usage-error style, once collection finishes.
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (where, problem, expected)
    compared: list[tuple[str, Any]] = field(default_factory=list)  # (label, --benchmark-compare document)
    gate: GateState | None = None  # set when the gate judges this run
    outcome: Outcome | None = None
    started: float = field(default_factory=time.monotonic)


_KEY = pytest.StashKey[PluginState]()


def state_of(config: pytest.Config) -> PluginState:
    """This run's state, created (and the settings parsed) on first use."""
    state = config.stash.get(_KEY, None)
    if state is None:
        state = config.stash[_KEY] = PluginState(settings_from_config(config))
    return state
