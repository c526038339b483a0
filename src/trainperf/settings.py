"""Command-line options and ini keys, parsed once into a frozen ``Settings``.

Every value is resolved as: command line, then environment variable (where one is named), then ini key,
then the default.  A bad value raises ``pytest.UsageError`` naming the option and what was expected.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from trainperf import cases

SETTINGS_KEY = pytest.StashKey["Settings"]()


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError
    return value


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise ValueError
        return value

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError
    return value


def parse_fraction(text: str) -> float:
    text = text.strip()
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 < value < 1:
        raise ValueError
    return value


def _busy_limit(text: str) -> float:
    """A share of the machine (fraction or percentage, up to 1), or 'off' for 1: never call a machine busy."""
    return 1.0 if text.strip().lower() == "off" else parse_fraction(text)


def _on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "1", "true", "yes"):
        return True
    if lowered in ("off", "0", "false", "no"):
        return False
    raise ValueError


def _auto_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_auto(text: str) -> Any:
        return None if text.strip().lower() == "auto" else parse(text)

    return parse_auto


def _choice_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        values = _split(text)
        if not values or any(v not in choices for v in values):
            raise ValueError
        return values

    return parse


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise ValueError
        return text.strip()

    return parse


def _int_list(parse_one: Callable[[str], int]) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        values = tuple(parse_one(v) for v in _split(text))
        if not values:
            raise ValueError
        return values

    return parse


def _split(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


def _endpoint(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError
    return text.strip()


def _identifier(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text.strip()):
        raise ValueError
    return text.strip()


def _model_list(text: str) -> tuple[str, ...]:
    values = _split(text)
    if not values:
        raise ValueError
    return values


@dataclass(frozen=True)
class Option:
    """One setting: its flag, ini key, optional environment variable, parser and default."""

    name: str  # attribute on Settings; flag is --trainperf-<name with dashes>, ini key trainperf_<name>
    metavar: str
    help: str
    expected: str
    parse: Callable[[str], Any]
    default: str | None
    env: str | None = None
    flag: bool = False  # a store_true switch

    @property
    def cli(self) -> str:
        return "--trainperf-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "trainperf_" + self.name


_LIST = "a comma-separated list of "
OPTIONS: tuple[Option, ...] = (
    Option(
        "matrix",
        "NAME",
        "base case matrix: 'default' (curated) or 'full' (every runnable combination)",
        "'default' or 'full'",
        _choice(("default", "full")),
        "default",
    ),
    Option(
        "device",
        "LIST",
        "replace the device axis of every case",
        _LIST + ", ".join(cases.DEVICES),
        _choice_list(cases.DEVICES),
        None,
    ),
    Option(
        "compile",
        "LIST",
        "replace the compile-mode axis",
        _LIST + ", ".join(cases.COMPILE_MODES),
        _choice_list(cases.COMPILE_MODES),
        None,
    ),
    Option(
        "precision",
        "LIST",
        "replace the precision axis",
        _LIST + ", ".join(cases.PRECISIONS),
        _choice_list(cases.PRECISIONS),
        None,
    ),
    Option(
        "memory_format",
        "LIST",
        "replace the memory-format axis",
        _LIST + ", ".join(cases.MEMORY_FORMATS),
        _choice_list(cases.MEMORY_FORMATS),
        None,
    ),
    Option(
        "model",
        "LIST",
        "replace the model axis: resnet18, resnet18_cifar, any torchvision classification "
        "model name, or package.module:factory",
        _LIST + "model names",
        _model_list,
        None,
    ),
    Option(
        "batch_size",
        "LIST",
        "replace the batch-size axis",
        _LIST + "positive integers",
        _int_list(_positive_int),
        None,
    ),
    Option(
        "optimizer",
        "LIST",
        "replace the Adam implementation axis",
        _LIST + ", ".join(cases.OPTIMIZERS),
        _choice_list(cases.OPTIMIZERS),
        None,
    ),
    Option(
        "data_dir",
        "DIR",
        "local CIFAR-10 in torchvision's format (never downloaded); unset: the "
        "deterministic synthetic CIFAR-shaped dataset",
        "a directory",
        str,
        None,
        env="TRAINPERF_DATA_DIR",
    ),
    Option(
        "synthetic_images",
        "N",
        "images in the synthetic dataset",
        "a positive integer",
        _positive_int,
        "50000",
    ),
    Option(
        "warmup_steps",
        "N",
        "untimed steps before the timed rounds (compilation happens here)",
        "a positive integer",
        _positive_int,
        "5",
    ),
    Option("rounds", "N", "timed rounds (windows) per step benchmark", "an integer >= 1", _positive_int, "10"),
    Option(
        "window_s",
        "SECONDS",
        "target length of one timed window; steps per window are calibrated to it",
        "a positive number",
        _positive_float,
        "1.0",
    ),
    Option(
        "steps",
        "N|auto",
        "steps per timed window instead of calibrating",
        "'auto' or a positive integer",
        _auto_or(_positive_int),
        "auto",
    ),
    Option(
        "epoch_images",
        "N|auto",
        "images per epoch benchmark round; auto: the whole dataset on a GPU, 5120 on CPU",
        "'auto' or a positive integer",
        _auto_or(_positive_int),
        "auto",
    ),
    Option("epoch_rounds", "N", "timed epochs per epoch benchmark", "a positive integer", _positive_int, "5"),
    Option(
        "num_workers",
        "N|auto",
        "DataLoader workers in the epoch benchmark; auto: min(8, cores) with a "
        "GPU, 0 on CPU (workers would steal the cores the model trains on)",
        "'auto' or an integer >= 0",
        _auto_or(_non_negative_int),
        "auto",
    ),
    Option(
        "loader_workers",
        "LIST",
        "num_workers values of the DataLoader benchmark",
        _LIST + "integers >= 0",
        _int_list(_non_negative_int),
        "0,2,4",
    ),
    Option(
        "loader_batches",
        "N",
        "batches per DataLoader benchmark round",
        "a positive integer",
        _positive_int,
        "50",
    ),
    Option(
        "loader_rounds",
        "N",
        "timed rounds per DataLoader benchmark",
        "a positive integer",
        _positive_int,
        "10",
    ),
    Option(
        "tf32",
        "on|off",
        "TF32 for matmul and cuDNN convolutions (float32_matmul_precision 'high')",
        "'on' or 'off'",
        _on_off,
        "on",
    ),
    Option("cudnn_benchmark", "on|off", "torch.backends.cudnn.benchmark", "'on' or 'off'", _on_off, "on"),
    Option(
        "require_cuda",
        "",
        "fail instead of skipping when CUDA is unavailable (for GPU CI jobs)",
        "'1' or '0'",
        _on_off,
        "0",
        env="TRAINPERF_REQUIRE_CUDA",
        flag=True,
    ),
    Option(
        "require_idle_gpu",
        "",
        "fail instead of warning when other processes use the GPU or it is already busy",
        "'1' or '0'",
        _on_off,
        "0",
        flag=True,
    ),
    Option(
        "sample_period_s",
        "SECONDS",
        "NVML/memory sampling period during timed rounds",
        "a positive number",
        _positive_float,
        "0.1",
    ),
    Option("seed", "N", "seed for data, weights and shuffling", "an integer >= 0", _non_negative_int, "0"),
    Option(
        "baseline_dir",
        "DIR",
        "directory of committed baselines, one <machine key>.json per machine (relative to the rootdir)",
        "a directory",
        str,
        "baselines",
    ),
    Option(
        "baseline",
        "PATH",
        "compare with this baseline file instead of the one for this machine's key",
        "a baseline JSON file",
        str,
        None,
    ),
    Option(
        "tolerance",
        "FRACTION",
        "allowed throughput drop before a significant one fails the run; overrides markers and baseline files",
        "a fraction (0.05) or a percentage (5%) between 0 and 1",
        parse_fraction,
        None,
    ),
    Option(
        "alpha",
        "P",
        "one-sided false-alarm level of a first measurement against its reference, before confirmation",
        "a number between 0 and 1",
        parse_fraction,
        "0.02",
    ),
    Option(
        "strict",
        "",
        "fail on benchmarks missing from the run, on inconclusive drops and on a machine without a baseline",
        "'1' or '0'",
        _on_off,
        "0",
        flag=True,
    ),
    Option(
        "update_baselines",
        "",
        "record this machine's baseline file from this run and more fresh-process runs (merged, atomically)",
        "'1' or '0'",
        _on_off,
        "0",
        flag=True,
    ),
    Option(
        "confirm",
        "on|off",
        "measure a benchmark that looks regressed again in a fresh process and fail only when that run agrees",
        "'on' or 'off'",
        _on_off,
        "on",
    ),
    Option(
        "confirm_timeout_s",
        "SECONDS",
        "time limit of the confirming fresh process (all suspects together); past it the first verdict stands",
        "a positive number",
        _positive_float,
        "600",
    ),
    Option(
        "busy_limit",
        "FRACTION",
        "share of the machine's CPU other processes may take while a regression is measured; above it the gate "
        "waits for a quiet machine and measures again, and gives no verdict (exit 7) if it stays busy",
        "a fraction (0.1) or a percentage (10%) between 0 and 1, or 'off'",
        _busy_limit,
        "0.10",
    ),
    Option(
        "run_noise",
        "FRACTION",
        "between-run noise assumed before a reference has measured its own (pooled with it on 2 degrees of freedom)",
        "a fraction (0.03) or a percentage (3%) between 0 and 1",
        parse_fraction,
        "0.03",
    ),
    Option(
        "record_min_runs",
        "N",
        "independent runs (fresh processes) a recorded baseline needs at least",
        "an integer >= 2",
        _at_least(2),
        "3",
    ),
    Option(
        "record_max_runs",
        "N",
        "most runs a recording measures while a benchmark's threshold is still above its tolerance",
        "an integer >= 2",
        _at_least(2),
        "5",
    ),
    Option(
        "record_budget_s",
        "SECONDS",
        "time budget of a recording, the first run included; fewer than the minimum runs in it refuses",
        "a positive number",
        _positive_float,
        "1200",
    ),
    Option(
        "verdict_json",
        "PATH",
        "write the gate's verdicts as JSON (readable by trainperf report)",
        "a file path",
        str,
        None,
    ),
    Option(
        "allow_mismatch",
        "",
        "compare with a baseline or run recorded on a different machine key",
        "'1' or '0'",
        _on_off,
        "0",
        flag=True,
    ),
    Option(
        "world_sizes",
        "LIST|auto",
        "world sizes (total processes) of the distributed benchmarks; auto: nnodes x 1..visible GPUs for CUDA "
        "cases, nnodes x 1,2 for CPU cases",
        "'auto' or " + _LIST + "positive integers",
        _auto_or(_int_list(_positive_int)),
        "auto",
    ),
    Option(
        "nnodes",
        "N",
        "nodes of a multi-node distributed run: start the same pytest command on each (needs "
        "--trainperf-rdzv-endpoint)",
        "a positive integer",
        _positive_int,
        "1",
        env="TRAINPERF_NNODES",
    ),
    Option(
        "rdzv_endpoint",
        "HOST:PORT",
        "torchrun c10d rendezvous endpoint; unset on one node: a free local port (torchrun --standalone)",
        "HOST:PORT",
        _endpoint,
        None,
        env="TRAINPERF_RDZV_ENDPOINT",
    ),
    Option(
        "rdzv_id",
        "ID",
        "rendezvous id prefix, the same on every node of one job (case and world size are appended)",
        "letters, digits, '_', '.' or '-'",
        _identifier,
        "trainperf",
        env="TRAINPERF_RDZV_ID",
    ),
    Option(
        "dist_timeout_s",
        "SECONDS",
        "wall-clock limit of one distributed launch (all ranks, start to finish); past it the ranks are killed "
        "and the case fails",
        "a positive number",
        _positive_float,
        "600",
    ),
)


@dataclass(frozen=True)
class Settings:
    matrix: str = "default"
    device: tuple[str, ...] | None = None
    compile: tuple[str, ...] | None = None
    precision: tuple[str, ...] | None = None
    memory_format: tuple[str, ...] | None = None
    model: tuple[str, ...] | None = None
    batch_size: tuple[int, ...] | None = None
    optimizer: tuple[str, ...] | None = None
    data_dir: str | None = None
    synthetic_images: int = 50_000
    warmup_steps: int = 5
    rounds: int = 10
    window_s: float = 1.0
    steps: int | None = None
    epoch_images: int | None = None
    epoch_rounds: int = 5
    num_workers: int | None = None
    loader_workers: tuple[int, ...] = (0, 2, 4)
    loader_batches: int = 50
    loader_rounds: int = 10
    tf32: bool = True
    cudnn_benchmark: bool = True
    require_cuda: bool = False
    require_idle_gpu: bool = False
    sample_period_s: float = 0.1
    seed: int = 0
    baseline_dir: str = "baselines"
    baseline: str | None = None
    tolerance: float | None = None
    alpha: float = 0.02
    strict: bool = False
    update_baselines: bool = False
    allow_mismatch: bool = False
    confirm: bool = True
    confirm_timeout_s: float = 600.0
    busy_limit: float = 0.10
    run_noise: float = 0.03
    record_min_runs: int = 3
    record_max_runs: int = 5
    record_budget_s: float = 1200.0
    verdict_json: str | None = None
    world_sizes: tuple[int, ...] | None = None
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    rdzv_id: str = "trainperf"
    dist_timeout_s: float = 600.0
    overrides: dict[str, tuple[Any, ...]] = field(default_factory=dict, compare=False)

    @classmethod
    def from_pytest_config(cls, config: pytest.Config) -> Settings:
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw, source = _raw_value(config, option)
            if raw is None:
                values[option.name] = None if option.default is None else option.parse(option.default)
                continue
            try:
                values[option.name] = option.parse(raw)
            except ValueError:
                raise pytest.UsageError(f"{source}: expected {option.expected}, got {raw!r}") from None
        if values["model"]:
            for name in values["model"]:
                _check_model_name(name)
        if values["data_dir"] is not None:
            from trainperf.datadir import DataError, check_cifar10_dir

            # Only the files' presence here: this runs in every pytest session of the environment. Their
            # contents are read when a benchmark is collected (plugin.pytest_collection_finish).
            try:
                check_cifar10_dir(values["data_dir"])
            except DataError as exc:
                raise pytest.UsageError(f"trainperf data dir: {exc}") from None
        if values["nnodes"] > 1 and values["rdzv_endpoint"] is None:
            raise pytest.UsageError(
                f"--trainperf-nnodes {values['nnodes']}: a multi-node run needs --trainperf-rdzv-endpoint HOST:PORT "
                f"(the same on every node)"
            )
        if values["nnodes"] > 1 and not values["world_sizes"]:
            # "auto" counts each node's own GPUs; nodes that disagree would launch different cases and wait
            # for each other's rendezvous until the deadline.
            raise pytest.UsageError(
                f"--trainperf-nnodes {values['nnodes']}: a multi-node run needs explicit --trainperf-world-sizes "
                f"(the same on every node), e.g. {values['nnodes']},{2 * values['nnodes']}"
            )
        if values["world_sizes"] and any(w % values["nnodes"] for w in values["world_sizes"]):
            raise pytest.UsageError(
                f"--trainperf-world-sizes: expected multiples of --trainperf-nnodes {values['nnodes']} (every node "
                f"runs the same number of processes), got {','.join(map(str, values['world_sizes']))}"
            )
        if values["record_max_runs"] < values["record_min_runs"]:
            raise pytest.UsageError(
                f"--trainperf-record-max-runs: expected at least --trainperf-record-min-runs "
                f"({values['record_min_runs']}), got {values['record_max_runs']}"
            )
        overrides = {axis: values[axis] for axis in cases.AXES if values[axis] is not None}
        return cls(**values, overrides=overrides)

    def cases(self, *, mps_available: bool = False) -> list[cases.Case]:
        return cases.build_matrix(self.matrix, self.overrides, mps_available=mps_available)

    def distributed_cases(self, *, gpus_per_node: int) -> list[cases.DistributedCase]:
        return cases.distributed_matrix(
            self.overrides, self.world_sizes, gpus_per_node=gpus_per_node, nnodes=self.nnodes
        )

    def recorded(self) -> dict[str, Any]:
        """The measurement settings, for extra_info and machine info."""
        keep = ("warmup_steps", "rounds", "window_s", "steps", "tf32", "cudnn_benchmark", "seed", "data_dir")
        return {k: getattr(self, k) for k in keep}


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
    from trainperf.models import torchvision_classifiers

    known = torchvision_classifiers()
    if name not in known:
        raise pytest.UsageError(
            f"--trainperf-model: unknown model {name!r}; expected resnet18, resnet18_cifar, a torchvision "
            f"classification model ({', '.join(sorted(known)[:6])}, ...) or package.module:factory"
        )
