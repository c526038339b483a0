"""Once the benchmarks are collected, before any runs: the environment, the checks that fail fast (CUDA required,
the data, an idle GPU), the gate's baseline, and the environment header.

``--collect-only`` stops before all of it: listing the benchmarks reads no data or baseline file and asks no GPU.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest

from trainperf.pytest_edge.compat import benchmarks_timed
from trainperf.pytest_edge.state import PluginState, state_of
from trainperf.settings import Settings

CHILD_ENV = "TRAINPERF_FRESH_RUN"  # fresh_run.CHILD_ENV, without importing it here


def _exit(message: str) -> None:
    pytest.exit(f"trainperf: {message}", returncode=pytest.ExitCode.USAGE_ERROR)


def start(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything between collection and the first benchmark, for the trainperf ``items`` collected."""
    state = state_of(config)
    state.active = bool(items)
    if not items or config.option.collectonly:
        return
    from trainperf.pytest_edge.data_check import check_data

    settings = state.settings
    info, flags = _environment(settings)
    _require_cuda(settings, info, items)
    check_data(items, settings)
    busy = _busy_gpu(settings, info, items)
    _prepare_gate(config, state, info)
    _header(config, settings, info, flags, items, busy)


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

        _exit(f"TRAINPERF_REQUIRE_CUDA is set but {device_unavailable_reason('cuda')}")
    if not any(i.get_closest_marker("cuda") for i in items):
        _exit("TRAINPERF_REQUIRE_CUDA is set but no CUDA case is selected")


def _busy_gpu(settings: Settings, info: dict[str, Any], items: list[pytest.Item]) -> list[str]:
    """What else uses the GPU the CUDA cases will run on (empty without CUDA cases)."""
    if not (info["cuda_available"] and any(i.get_closest_marker("cuda") for i in items)):
        return []
    import torch

    from trainperf.machine.preflight import check_gpu

    busy = check_gpu(torch.cuda.current_device())
    if busy and settings.require_idle_gpu:
        _exit(f"the GPU is not idle: {'; '.join(busy)} (--trainperf-require-idle-gpu)")
    return busy


def _prepare_gate(config: pytest.Config, state: PluginState, info: dict[str, Any]) -> None:
    settings = state.settings
    if os.environ.get(CHILD_ENV):
        return  # a fresh process measuring for its parent: the parent judges
    if not benchmarks_timed(config):
        if settings.update_baselines or settings.strict:
            _exit(
                "--trainperf-update-baselines and --trainperf-strict need timed benchmarks; they are disabled here "
                "(--benchmark-disable, --benchmark-skip or pytest-xdist)"
            )
        return
    from trainperf.gate import judging as gate

    try:
        state.gate = gate.prepare(settings, config.rootpath, info, state.compared)
    except gate.GateInputError as exc:
        _exit(str(exc))


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
