"""Once the benchmarks are collected, before any runs: the environment, the checks that fail fast (CUDA required,
tolerance markers, the data, an idle GPU, the runs --benchmark-compare names), the gate's baseline, and the
environment header. Each refusal is a usage error in the one style of ``errors``.

``--collect-only`` stops before all of it: listing the benchmarks reads no data or baseline file and asks no GPU.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest

from trainperf.pytest_edge.compat import benchmarks_timed, compared_files
from trainperf.pytest_edge.errors import bad_input, refuse
from trainperf.pytest_edge.state import PluginState, state_of
from trainperf.settings import Settings

CHILD_ENV = "TRAINPERF_FRESH_RUN"  # fresh_run.CHILD_ENV, without importing it here
A_SAVED_RUN = "a run saved by pytest perf/ with --benchmark-autosave or --benchmark-save (its number or file)"
A_REFERENCE = "a baseline or saved run recorded on this machine (docs/gate.md)"


def start(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything between collection and the first benchmark, for the trainperf ``items`` collected."""
    state = state_of(config)
    state.active = bool(items)
    state.nodeids = frozenset(i.nodeid for i in items)
    if state.refused:
        bad_input(*state.refused[0])
    if not items or config.option.collectonly:
        return
    from trainperf.pytest_edge.data_check import check_data

    settings = state.settings
    _check_tolerance_markers(items)
    info, flags = _environment(settings)
    _require_cuda(settings, info, items)
    check_data(items, settings)
    busy = _busy_gpu(settings, info, items)
    _prepare_gate(config, state, info)
    _header(config, settings, info, flags, items, busy)


def _check_tolerance_markers(items: list[pytest.Item]) -> None:
    """A bad ``trainperf_tolerance`` marker is refused now, not as a failure after its benchmark ran."""
    from trainperf.settings import parse_fraction

    for item in items:
        marker = item.get_closest_marker("trainperf_tolerance")
        if marker is None:
            continue
        try:
            if len(marker.args) != 1 or marker.kwargs:
                raise ValueError
            parse_fraction(str(marker.args[0]))
        except ValueError:
            bad_input(
                f"trainperf_tolerance marker on {item.nodeid}",
                f"got {marker.args!r}" + (f" {marker.kwargs!r}" if marker.kwargs else ""),
                "one fraction (0.1) or percentage ('10%') between 0 and 1",
            )


def _environment(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    from trainperf.machine.environment import apply_backend_flags, environment_info

    # This runs outside any test, where a project's `filterwarnings = error` would turn a library's deprecation
    # notice (a torch release renaming a flag API) into a crash of the whole run: show it instead.
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        flags = apply_backend_flags(tf32=settings.tf32, cudnn_benchmark=settings.cudnn_benchmark)
        return environment_info(), flags


def _require_cuda(settings: Settings, info: dict[str, Any], items: list[pytest.Item]) -> None:
    if not settings.require_cuda:
        return
    if not info["cuda_available"]:
        from trainperf.machine.environment import device_unavailable_reason

        problem = f"TRAINPERF_REQUIRE_CUDA is set but {device_unavailable_reason('cuda')}"
        bad_input("--trainperf-require-cuda", problem, "a CUDA GPU this torch can use")
    if not any(i.get_closest_marker("cuda") for i in items):
        problem = "TRAINPERF_REQUIRE_CUDA is set but no CUDA case is selected"
        bad_input("--trainperf-require-cuda", problem, "a selection (-m, -k) with CUDA cases")


def _busy_gpu(settings: Settings, info: dict[str, Any], items: list[pytest.Item]) -> list[str]:
    """What else uses the GPU the CUDA cases will run on (empty without CUDA cases)."""
    if not (info["cuda_available"] and any(i.get_closest_marker("cuda") for i in items)):
        return []
    import torch

    from trainperf.machine.preflight import check_gpu

    busy = check_gpu(torch.cuda.current_device())
    if busy and settings.require_idle_gpu:
        bad_input("--trainperf-require-idle-gpu", f"the GPU is not idle ({', '.join(busy)})", "an idle GPU")
    return busy


def _prepare_gate(config: pytest.Config, state: PluginState, info: dict[str, Any]) -> None:
    settings = state.settings
    if os.environ.get(CHILD_ENV):
        return  # a fresh process measuring for its parent: the parent judges
    if not benchmarks_timed(config):
        if settings.update_baselines or settings.strict:
            bad_input(
                "--trainperf-update-baselines" if settings.update_baselines else "--trainperf-strict",
                "needs timed benchmarks; they are disabled here (--benchmark-disable, --benchmark-skip or xdist)",
                "a run that times its benchmarks",
            )
        return
    from trainperf.gate import judging as gate

    _check_compared(config)
    try:
        state.gate = gate.prepare(settings, config.rootpath, info, state.compared)
    except gate.GateInputError as exc:
        refuse(str(exc), A_REFERENCE)


def _check_compared(config: pytest.Config) -> None:
    """Every file ``--benchmark-compare NAME`` names is a run of this suite. pytest-benchmark only warns about a
    file it cannot read and compares without it: the gate would pass a run it was asked to compare."""
    name = config.getoption("benchmark_compare", None)
    if not name or name is True:  # the latest saved run, if any: a first run has none
        return
    from trainperf.gate import baseline as bl
    from trainperf.gate.runs import RunError, parse_run

    files = compared_files(config, name)
    if files == []:
        bad_input(f"--benchmark-compare {name}", "no saved run matches it", A_SAVED_RUN)
    for path in files or ():
        where = f"--benchmark-compare {path}"
        try:
            parse_run(bl.read_json(path, what="saved run file"), where)
        except bl.BaselineError as exc:
            bad_input(where, exc.problem, exc.expected)
        except RunError as exc:
            bad_input(where, str(exc).removeprefix(f"{where}: "), A_SAVED_RUN)


def _header(
    config: pytest.Config,
    settings: Settings,
    info: dict[str, Any],
    flags: dict[str, Any],
    items: list[pytest.Item],
    busy: list[str],
) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    from trainperf.machine.environment import header_lines

    reporter.write_sep("-", "trainperf environment")
    data = settings.data_dir or f"synthetic CIFAR-shaped, {settings.synthetic_images} images"
    lines = [*header_lines(info, flags), f"data: {data}"]
    if any(i.get_closest_marker("dataloader") for i in items) and (note := settings.loader_worker_counts().note()):
        lines.append(note)
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
