"""pytest plugin: options, markers, case parametrization, the environment header and machine info.

Loaded by every pytest run in the environment, so it imports only the standard library and pytest at the top;
torch comes in only once a collected test asks for a trainperf fixture.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest

from trainperf.fixtures import (  # noqa: F401  (fixtures are found by name on the plugin module)
    trainperf_case,
    trainperf_compile_case,
    trainperf_dataset,
    trainperf_loader_case,
    trainperf_model,
    trainperf_runner,
    trainperf_settings,
    trainperf_trainer,
)
from trainperf.runner import RESULTS_KEY
from trainperf.settings import SETTINGS_KEY, Settings, add_options

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
}
CASE_FIXTURES = ("trainperf_case", "trainperf_compile_case", "trainperf_loader_case")
ACTIVE_KEY = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    settings = Settings.from_pytest_config(config)
    config.stash[SETTINGS_KEY] = settings
    config.stash[RESULTS_KEY] = []


def _mps_possible() -> bool:
    if sys.platform != "darwin":
        return False
    from trainperf.environment import mps_available

    return mps_available()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = [n for n in CASE_FIXTURES if n in metafunc.fixturenames]
    if not names:
        return
    if len(names) > 1:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: use only one of {', '.join(names)}")
    from trainperf.cases import compile_matrix, loader_matrix

    settings: Settings = metafunc.config.stash[SETTINGS_KEY]
    training = settings.cases(mps_available=_mps_possible())
    name = names[0]
    if name == "trainperf_loader_case":
        loader_cases = loader_matrix((c.device for c in training), settings.loader_workers)
        params = [
            pytest.param(c, id=c.id, marks=[getattr(pytest.mark, c.device), pytest.mark.dataloader])
            for c in loader_cases
        ]
    else:
        selected = compile_matrix(training) if name == "trainperf_compile_case" else training
        params = [
            pytest.param(
                c,
                id=c.id,
                marks=[
                    getattr(pytest.mark, c.device),
                    pytest.mark.compile if c.compiled else pytest.mark.eager,
                ],
            )
            for c in selected
        ]
    if not params:
        params = [pytest.param(None, marks=pytest.mark.skip(reason=f"the case matrix has no case for {name}"))]
    metafunc.parametrize(name, params)


def _uses_trainperf(item: pytest.Item) -> bool:
    return any(n in getattr(item, "fixturenames", ()) for n in CASE_FIXTURES)


def pytest_collection_finish(session: pytest.Session) -> None:
    items = [i for i in session.items if _uses_trainperf(i)]
    config = session.config
    config.stash[ACTIVE_KEY] = bool(items)
    if not items:
        return
    from trainperf.environment import apply_backend_flags, environment_info, header_lines

    settings: Settings = config.stash[SETTINGS_KEY]
    # This runs outside any test, where a project's `filterwarnings = error` would turn a library's deprecation
    # notice (a torch release renaming a flag API) into a crash of the whole run: show it instead.
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        flags = apply_backend_flags(tf32=settings.tf32, cudnn_benchmark=settings.cudnn_benchmark)
        info = environment_info()
    if settings.require_cuda:
        if not info["cuda_available"]:
            from trainperf.environment import device_unavailable_reason

            pytest.exit(
                f"trainperf: TRAINPERF_REQUIRE_CUDA is set but {device_unavailable_reason('cuda')}",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )
        if not any(i.get_closest_marker("cuda") for i in items):
            pytest.exit(
                "trainperf: TRAINPERF_REQUIRE_CUDA is set but no CUDA case is selected",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("-", "trainperf environment")
        data = settings.data_dir or f"synthetic CIFAR-shaped, {settings.synthetic_images} images"
        for line in [*header_lines(info, flags), f"data: {data}"]:
            reporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    if not config.stash.get(ACTIVE_KEY, False):
        return
    from trainperf import __version__
    from trainperf.environment import backend_flags, environment_info

    settings: Settings = config.stash[SETTINGS_KEY]
    machine_info["trainperf"] = {
        "version": __version__,
        **environment_info(),
        "backend_flags": backend_flags(),
        "settings": settings.recorded(),
    }


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, [])
    if not results:
        return
    from trainperf.table import format_results

    terminalreporter.write_sep("-", "trainperf results (median img/s over rounds, spread = IQR/median)")
    for line in format_results(results):
        terminalreporter.write_line(line)
