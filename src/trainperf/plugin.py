"""pytest plugin: options, markers, case parametrization, the environment header and machine info.

Loaded by every pytest run in the environment, so it imports only the standard library and pytest at the top;
torch comes in only once a collected test asks for a trainperf fixture.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from trainperf.fixtures import (  # noqa: F401  (fixtures are found by name on the plugin module)
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
from trainperf.runner import RESULTS_KEY
from trainperf.settings import SETTINGS_KEY, Settings, add_options

if TYPE_CHECKING:
    from trainperf.cases import Case

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
CASE_FIXTURES = ("trainperf_case", "trainperf_compile_case", "trainperf_loader_case", "trainperf_ddp_case")
ACTIVE_KEY = pytest.StashKey[bool]()
COMPARED_KEY = pytest.StashKey[list[tuple[str, Any]]]()
GATE_KEY = pytest.StashKey[Any]()
OUTCOME_KEY = pytest.StashKey[Any]()
STARTED_KEY = pytest.StashKey[float]()
CHILD_ENV = "TRAINPERF_FRESH_RUN"  # fresh_run.CHILD_ENV, without importing it here


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    settings = Settings.from_pytest_config(config)
    config.stash[SETTINGS_KEY] = settings
    config.stash[RESULTS_KEY] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[STARTED_KEY] = time.monotonic()


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
    name = names[0]
    if name == "trainperf_ddp_case":
        from trainperf.environment import visible_gpus

        distributed = settings.distributed_cases(gpus_per_node=visible_gpus())
        params = [pytest.param(d, id=d.id, marks=[*_case_marks(d.case), pytest.mark.distributed]) for d in distributed]
    else:
        training = settings.cases(mps_available=_mps_possible())
        if name == "trainperf_loader_case":
            loader_cases = loader_matrix((c.device for c in training), settings.loader_workers)
            params = [
                pytest.param(c, id=c.id, marks=[getattr(pytest.mark, c.device), pytest.mark.dataloader])
                for c in loader_cases
            ]
        else:
            selected = compile_matrix(training) if name == "trainperf_compile_case" else training
            params = [pytest.param(c, id=c.id, marks=_case_marks(c)) for c in selected]
    if not params:
        params = [pytest.param(None, marks=pytest.mark.skip(reason=f"the case matrix has no case for {name}"))]
    metafunc.parametrize(name, params)


def _case_marks(case: Case) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, case.device), pytest.mark.compile if case.compiled else pytest.mark.eager]


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
    from trainperf.data_check import check_data

    check_data(items, settings)
    busy: list[str] = []
    if info["cuda_available"] and any(i.get_closest_marker("cuda") for i in items):
        import torch

        from trainperf.preflight import check_gpu

        busy = check_gpu(torch.cuda.current_device())
        if busy and settings.require_idle_gpu:
            pytest.exit(
                f"trainperf: the GPU is not idle: {'; '.join(busy)} (--trainperf-require-idle-gpu)",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )
    if os.environ.get(CHILD_ENV):
        pass  # a fresh process measuring for its parent: the parent judges
    elif not _benchmarks_timed(config):
        if settings.update_baselines or settings.strict:
            pytest.exit(
                "trainperf: --trainperf-update-baselines and --trainperf-strict need timed benchmarks; they are "
                "disabled here (--benchmark-disable, --benchmark-skip or pytest-xdist)",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )
    else:
        from trainperf import gate

        try:
            config.stash[GATE_KEY] = gate.prepare(settings, config.rootpath, info, config.stash.get(COMPARED_KEY, []))
        except gate.GateInputError as exc:
            pytest.exit(f"trainperf: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("-", "trainperf environment")
        data = settings.data_dir or f"synthetic CIFAR-shaped, {settings.synthetic_images} images"
        lines = [*header_lines(info, flags), f"data: {data}"]
        if any(i.get_closest_marker("distributed") for i in items):
            lines.append(_distributed_line(settings))
        for line in lines:
            reporter.write_line(line)
        for reason in busy:
            reporter.write_line(
                f"WARNING: the GPU is not idle: {reason}; its numbers and verdicts are not "
                f"trustworthy (--trainperf-require-idle-gpu makes this an error)",
                red=True,
                bold=True,
            )


def _distributed_line(settings: Settings) -> str:
    if settings.nnodes > 1:
        where = f"{settings.nnodes} nodes, c10d rendezvous at {settings.rdzv_endpoint} (id {settings.rdzv_id}-...)"
    elif settings.rdzv_endpoint:
        where = f"one node, c10d rendezvous at {settings.rdzv_endpoint}"
    else:
        where = "one node, standalone rendezvous on a free port"
    sizes = ",".join(map(str, settings.world_sizes)) if settings.world_sizes else "auto"
    return f"distributed: torchrun per world size ({sizes}); {where}; timeout {settings.dist_timeout_s:g} s per launch"


def _benchmarks_timed(config: pytest.Config) -> bool:
    """Whether pytest-benchmark times rounds in this run: it also turns itself off (one untimed call per test)
    under xdist and when it cannot import statistics, which only its session object knows."""
    if hasattr(config, "workerinput"):  # an xdist worker
        return False
    session = getattr(config, "_benchmarksession", None)
    if session is not None and hasattr(session, "disabled"):
        disabled = bool(session.disabled)
    else:
        disabled = config.getoption("benchmark_disable", False) and not config.getoption("benchmark_enable", False)
    return not disabled and not config.getoption("benchmark_skip", False)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_compare_machine_info(
    config: pytest.Config, benchmarksession: Any, machine_info: dict[str, Any], compared_benchmark: dict[str, Any]
) -> None:
    """Keep each run --benchmark-compare loads: the gate compares throughput with it too."""
    when = compared_benchmark.get("datetime", "?") if isinstance(compared_benchmark, dict) else "?"
    config.stash.setdefault(COMPARED_KEY, []).append((f"--benchmark-compare run of {when}", compared_benchmark))


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    # Also called at configure time (before collection) when --benchmark-compare loads a run: the section must
    # be there then too, or every comparison warns that the machine changed.  Only what describes the machine
    # goes here: flags and settings are per benchmark, in extra_info.
    if config.stash.get(ACTIVE_KEY, True) is False:
        return
    from trainperf import __version__
    from trainperf.environment import environment_info

    machine_info["trainperf"] = {"version": __version__, **environment_info()}


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = config.stash.get(GATE_KEY, None)
    # Nothing to judge after --collect-only, an interrupted run, an internal or usage error: a verdict (or a
    # recorded baseline) from a partial run would be wrong.
    if state is None or config.option.collectonly:
        return
    if session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or session.shouldstop:
        return
    from trainperf import fresh_run, gate, gate_run
    from trainperf.settings import OPTIONS

    results = [
        gate.Current(
            r.name,
            tuple(r.extra["img_per_s_rounds"]),
            r.extra["img_per_s"],
            r.extra["img_per_s_spread"],
            r.tolerance,
            r.extra,
            r.nodeid,
        )
        for r in config.stash.get(RESULTS_KEY, [])
        if "img_per_s_rounds" in r.extra
    ]
    valued = {o.cli for o in OPTIONS if not o.flag}
    child = gate_run.ChildContext(
        options=tuple(fresh_run.child_arguments([*fresh_run.addopts_tokens(), *config.invocation_params.args], valued)),
        rootdir=config.rootpath,
        inifile=config.inipath,
        invocation_dir=config.invocation_params.dir,
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    started = config.stash.get(STARTED_KEY, time.monotonic())
    settings: Settings = config.stash[SETTINGS_KEY]
    with warnings.catch_warnings():  # a library's deprecation notice must not crash the verdict
        warnings.simplefilter("default")
        outcome = gate_run.finish(state, settings, results, session.testsfailed, child, time.monotonic() - started, say)
    config.stash[OUTCOME_KEY] = outcome
    if settings.verdict_json:
        _write_verdict(settings.verdict_json, state.key, outcome)
    if outcome.exit_code and (session.exitstatus == pytest.ExitCode.OK or settings.update_baselines):
        session.exitstatus = outcome.exit_code


def _write_verdict(path: str, key: str, outcome: Any) -> None:
    from pathlib import Path

    from trainperf import verdict_report

    doc = verdict_report.document(
        outcome.rows, mode="baseline", machine_key=key, exit_code=outcome.exit_code, notes=outcome.notes
    )
    try:
        verdict_report.write(Path(path), doc)
    except OSError as exc:
        outcome.notes.append(f"--trainperf-verdict-json {path}: not written ({exc.strerror or exc})")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS_KEY, [])
    if results:
        from trainperf.table import format_results

        terminalreporter.write_sep("-", "trainperf results (median img/s over rounds, spread = IQR/median)")
        for line in format_results(results):
            terminalreporter.write_line(line)
    outcome = config.stash.get(OUTCOME_KEY, None)
    if outcome is None:
        return
    from trainperf import verdict_report
    from trainperf.gate import EXIT_CONTENDED, EXIT_NOT_UPDATED

    state = config.stash[GATE_KEY]
    where = state.committed.path if state.committed else state.note
    terminalreporter.write_sep("-", f"trainperf gate: machine key {state.key}; baseline: {where}")
    if outcome.rows:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            lines = verdict_report.table_lines(outcome.rows)
        for line in [*lines, verdict_report.legend()]:
            terminalreporter.write_line(line)
    for line in outcome.notes:
        terminalreporter.write_line(line)
    if outcome.exit_code == EXIT_NOT_UPDATED:
        terminalreporter.write_sep("=", "trainperf: baseline not updated", red=True, bold=True)
    elif outcome.exit_code == EXIT_CONTENDED:
        terminalreporter.write_sep("=", "trainperf: no verdict — the machine was busy", yellow=True, bold=True)
    elif outcome.failures or outcome.errors:
        terminalreporter.write_sep("=", "trainperf gate FAILED", red=True, bold=True)
    for line in outcome.errors + outcome.failures:
        terminalreporter.write_line(line, red=True)
    if outcome.exit_code == 0:
        terminalreporter.write_line("trainperf gate: passed", green=True)
