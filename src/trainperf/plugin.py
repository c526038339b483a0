"""pytest plugin: options, markers, case parametrization, the environment header and machine info.

Loaded by every pytest run in the environment, so it imports only the standard library and pytest at the top;
torch comes in only once a collected test asks for a trainperf fixture.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from trainperf.pytest_edge.fixtures import (  # noqa: F401  (fixtures are found by name on the plugin module)
    trainperf_case,
    trainperf_compile_case,
    trainperf_dataset,
    trainperf_ddp_case,
    trainperf_epoch_loader,
    trainperf_loader_case,
    trainperf_model,
    trainperf_optimizer,
    trainperf_runner,
    trainperf_settings,
    trainperf_trainer,
)
from trainperf.pytest_edge.options import add_options
from trainperf.pytest_edge.parametrize import CASE_FIXTURES, params, uses_trainperf
from trainperf.pytest_edge.state import state_of

MARKERS = {
    "cpu": "a trainperf case that runs on the CPU",
    "cuda": "a trainperf case that runs on a CUDA GPU",
    "mps": "a trainperf case that runs on Apple MPS",
    "eager": "a trainperf case in eager mode",
    "compile": "a trainperf case under torch.compile (any mode)",
    "train_step": "training-step throughput benchmarks",
    "epoch": "slow benchmarks: whole epochs through the real DataLoader",
    "dataloader": "DataLoader-only throughput benchmarks",
    "compile_time": "cold/warm-cache compile-time benchmarks (fresh processes)",
    "distributed": "data-parallel (DDP) training benchmarks launched with torchrun, one launch per world size",
    "trainperf_tolerance(fraction)": "allowed throughput drop for this benchmark in the regression gate, "
    "e.g. 0.1 or '10%'",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    state_of(config)  # the settings are parsed here: a bad option is a usage error before collection


def pytest_sessionstart(session: pytest.Session) -> None:
    state_of(session.config).started = time.monotonic()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = [n for n in CASE_FIXTURES if n in metafunc.fixturenames]
    if len(names) > 1:  # raised here, it would be a collection error with a traceback: refused once collected
        where, problem = metafunc.definition.nodeid, f"asks for {', '.join(names)}"
        state_of(metafunc.config).refused.append((where, problem, "one trainperf case fixture per test"))
    elif names:
        metafunc.parametrize(names[0], params(names[0], state_of(metafunc.config).settings))


def pytest_collection_finish(session: pytest.Session) -> None:
    from trainperf.pytest_edge.session_start import start

    start(session.config, [i for i in session.items if uses_trainperf(i)])


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_compare_machine_info(
    config: pytest.Config, benchmarksession: Any, machine_info: dict[str, Any], compared_benchmark: dict[str, Any]
) -> None:
    """Keep each run --benchmark-compare loads: the gate compares throughput with it too."""
    when = compared_benchmark.get("datetime", "?") if isinstance(compared_benchmark, dict) else "?"
    state_of(config).compared.append((f"--benchmark-compare run of {when}", compared_benchmark))


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    # Also called at configure time (before collection) when --benchmark-compare loads a run: the section must
    # be there then too, or every comparison warns that the machine changed.  Only what describes the machine
    # goes here: flags and settings are per benchmark, in extra_info.
    if state_of(config).active is False:
        return
    from trainperf import __version__
    from trainperf.machine.environment import environment_info

    machine_info["trainperf"] = {"version": __version__, **environment_info()}


def pytest_sessionfinish(session: pytest.Session) -> None:
    from trainperf.pytest_edge.session_finish import finish

    finish(session)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    from trainperf.pytest_edge.session_finish import summary

    summary(terminalreporter, config)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    """Scaling efficiency is a property of the run: computed once every world size has run, as it is saved.
    Case parameters are saved as their ids (plain JSON)."""
    from trainperf.gate.runs import add_scaling
    from trainperf.pytest_edge.session_finish import plain_params

    add_scaling(output_json.get("benchmarks", []))
    plain_params(output_json.get("benchmarks", []))
