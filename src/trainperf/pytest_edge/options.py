"""The pytest edge of ``trainperf.settings``: its options as flags and ini keys, and a config parsed into Settings.

Every value is resolved as: command line, then environment variable (where one is named), then ini key,
then the default.  A bad value stops the run as a usage error naming the option, the value and what was expected
(``trainperf.pytest_edge.errors``).  The parsed Settings are kept for the run by ``trainperf.pytest_edge.state``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

from trainperf.measurement import cases
from trainperf.pytest_edge.errors import bad_input, split_expected
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
    """The trainperf settings of this pytest run; a bad or inconsistent value stops the run (``errors``)."""
    raw = {option.name: _raw_value(config, option) for option in OPTIONS}
    values = {option.name: _value(option, *raw[option.name]) for option in OPTIONS}
    for name in values["model"] or ():
        _check_model_name(name)
    if values["data_dir"] is not None:
        _check_data_dir(values["data_dir"], raw["data_dir"][1])
    _check_distributed(values["nnodes"], values["rdzv_endpoint"], values["world_sizes"])
    if values["record_max_runs"] < values["record_min_runs"]:
        bad_input(
            "--trainperf-record-max-runs",
            f"{values['record_max_runs']} is fewer than --trainperf-record-min-runs {values['record_min_runs']}",
            f"at least {values['record_min_runs']}",
        )
    if values["update_baselines"] and values["baseline"] is not None:
        bad_input(
            "--trainperf-update-baselines",
            "cannot be combined with --trainperf-baseline (a recording goes to this machine's own file)",
            "one of the two",
        )
    overrides = {axis: values[axis] for axis in cases.AXES if values[axis] is not None}
    return Settings(**values, overrides=overrides)


def _value(option: Option, raw: str | None, source: str) -> Any:
    if raw is None:
        return option.value
    try:
        return option.parse(raw)
    except ValueError:
        bad_input(source, f"got {raw!r}", option.expected)


def _raw_value(config: pytest.Config, option: Option) -> tuple[str | None, str]:
    """The value given for ``option`` and where it came from (the flag, the environment variable, the ini key)."""
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
    return None, option.cli


def _check_data_dir(data_dir: str, source: str) -> None:
    from trainperf.measurement.datadir import DataError, check_cifar10_dir

    # Only the files' presence here: this runs in every pytest session of the environment. Their
    # contents are read when a benchmark is collected (session_start, through data_check).
    try:
        check_cifar10_dir(data_dir)
    except DataError as exc:
        bad_input(source, *split_expected(str(exc)))


def _check_distributed(nnodes: int, rdzv_endpoint: str | None, world_sizes: tuple[int, ...] | None) -> None:
    if nnodes > 1 and rdzv_endpoint is None:
        bad_input(
            f"--trainperf-nnodes {nnodes}",
            "a multi-node run needs --trainperf-rdzv-endpoint",
            "--trainperf-rdzv-endpoint HOST:PORT, the same on every node",
        )
    if nnodes > 1 and not world_sizes:
        # "auto" counts each node's own GPUs; nodes that disagree would launch different cases and wait
        # for each other's rendezvous until the deadline.
        bad_input(
            f"--trainperf-nnodes {nnodes}",
            "a multi-node run needs explicit --trainperf-world-sizes",
            f"the same --trainperf-world-sizes on every node, e.g. {nnodes},{2 * nnodes}",
        )
    if world_sizes and any(w % nnodes for w in world_sizes):
        bad_input(
            "--trainperf-world-sizes",
            f"got {','.join(map(str, world_sizes))}",
            f"multiples of --trainperf-nnodes {nnodes} (every node runs the same number of processes)",
        )


MODEL_EXPECTED = "resnet18, resnet18_cifar, a torchvision classification model ({known}, ...) or package.module:factory"


def _check_model_name(name: str) -> None:
    if name in cases.BUILTIN_MODELS:
        return
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            bad_input(
                "--trainperf-model", f"cannot import module {module_name!r} of {name!r} ({exc})", "an importable module"
            )
        if not callable(getattr(module, attr, None)):
            bad_input("--trainperf-model", f"{module_name!r} has no callable {attr!r}", "package.module:factory")
        return
    from trainperf.measurement.models import torchvision_classifiers

    known = torchvision_classifiers()
    if name not in known:
        bad_input(
            "--trainperf-model", f"unknown model {name!r}", MODEL_EXPECTED.format(known=", ".join(sorted(known)[:6]))
        )
