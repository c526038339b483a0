"""The pytest edge of ``trainperf.settings``: its options as flags and ini keys, and a config parsed into Settings.

Every value is resolved as: command line, then environment variable (where one is named), then ini key,
then the default.  A bad value raises ``pytest.UsageError`` naming the option and what was expected.  The parsed
Settings are kept for the run by ``trainperf.pytest_edge.state``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

from trainperf.measurement import cases
from trainperf.settings import OPTIONS, Option, Settings


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("trainperf", "trainperf: training throughput benchmarks")
    for option in OPTIONS:
        default = option.default if option.default is not None else "unset"
        env = f"; env {option.env}" if option.env else ""
        help_text = f"{option.help}{env}. Default: {default}"
        if option.flag:
            group.addoption(option.cli, action="store_true", default=False, help=help_text)
        else:
            group.addoption(option.cli, metavar=option.metavar, default=None, help=help_text)
        parser.addini(option.ini, help=help_text, default="")


def settings_from_config(config: pytest.Config) -> Settings:
    """The trainperf settings of this pytest run; raises ``pytest.UsageError`` on a bad or inconsistent value."""
    values = {option.name: _value(config, option) for option in OPTIONS}
    for name in values["model"] or ():
        _check_model_name(name)
    if values["data_dir"] is not None:
        _check_data_dir(values["data_dir"])
    _check_distributed(values["nnodes"], values["rdzv_endpoint"], values["world_sizes"])
    if values["record_max_runs"] < values["record_min_runs"]:
        raise pytest.UsageError(
            f"--trainperf-record-max-runs: expected at least --trainperf-record-min-runs "
            f"({values['record_min_runs']}), got {values['record_max_runs']}"
        )
    overrides = {axis: values[axis] for axis in cases.AXES if values[axis] is not None}
    return Settings(**values, overrides=overrides)


def _value(config: pytest.Config, option: Option) -> Any:
    raw, source = _raw_value(config, option)
    if raw is None:
        return option.value
    try:
        return option.parse(raw)
    except ValueError:
        raise pytest.UsageError(f"{source}: expected {option.expected}, got {raw!r}") from None


def _raw_value(config: pytest.Config, option: Option) -> tuple[str | None, str]:
    cli = config.getoption(option.cli)
    if option.flag and cli:
        return "1", option.cli
    if not option.flag and cli is not None:
        return str(cli), option.cli
    if option.env and os.environ.get(option.env, "").strip():
        return os.environ[option.env], f"environment variable {option.env}"
    ini = config.getini(option.ini)
    if ini not in ("", None):
        return str(ini), f"ini option {option.ini}"
    return None, ""


def _check_data_dir(data_dir: str) -> None:
    from trainperf.measurement.datadir import DataError, check_cifar10_dir

    # Only the files' presence here: this runs in every pytest session of the environment. Their
    # contents are read when a benchmark is collected (plugin.pytest_collection_finish).
    try:
        check_cifar10_dir(data_dir)
    except DataError as exc:
        raise pytest.UsageError(f"trainperf data dir: {exc}") from None


def _check_distributed(nnodes: int, rdzv_endpoint: str | None, world_sizes: tuple[int, ...] | None) -> None:
    if nnodes > 1 and rdzv_endpoint is None:
        raise pytest.UsageError(
            f"--trainperf-nnodes {nnodes}: a multi-node run needs --trainperf-rdzv-endpoint HOST:PORT "
            f"(the same on every node)"
        )
    if nnodes > 1 and not world_sizes:
        # "auto" counts each node's own GPUs; nodes that disagree would launch different cases and wait
        # for each other's rendezvous until the deadline.
        raise pytest.UsageError(
            f"--trainperf-nnodes {nnodes}: a multi-node run needs explicit --trainperf-world-sizes "
            f"(the same on every node), e.g. {nnodes},{2 * nnodes}"
        )
    if world_sizes and any(w % nnodes for w in world_sizes):
        raise pytest.UsageError(
            f"--trainperf-world-sizes: expected multiples of --trainperf-nnodes {nnodes} (every node "
            f"runs the same number of processes), got {','.join(map(str, world_sizes))}"
        )


def _check_model_name(name: str) -> None:
    if name in cases.BUILTIN_MODELS:
        return
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise pytest.UsageError(
                f"--trainperf-model: cannot import module {module_name!r} of {name!r}: {exc}"
            ) from None
        if not callable(getattr(module, attr, None)):
            raise pytest.UsageError(
                f"--trainperf-model: {module_name!r} has no callable {attr!r} (expected package.module:factory)"
            )
        return
    from trainperf.measurement.models import torchvision_classifiers

    known = torchvision_classifiers()
    if name not in known:
        raise pytest.UsageError(
            f"--trainperf-model: unknown model {name!r}; expected resnet18, resnet18_cifar, a torchvision "
            f"classification model ({', '.join(sorted(known)[:6])}, ...) or package.module:factory"
        )
