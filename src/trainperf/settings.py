"""Every trainperf setting, declared once: a field of the frozen ``Settings`` with its option.

Each field's ``_option(...)`` (or a shorthand for a common kind: ``_switch``, ``_count``, ``_seconds``, ...) names
the metavar, help text, what a value must look like, its parser and its default as the string the help shows; the
field's default is that string parsed.  ``OPTIONS`` lists them for the pytest edge (``trainperf.pytest_edge.options``),
which turns them into ``--trainperf-*`` flags and ``trainperf_*`` ini keys.  Pure: no pytest, no torch, so the gate
and other pure modules can import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from trainperf.measurement import cases


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise ValueError
        return value

    return parse


_positive_int = _at_least(1)
_non_negative_int = _at_least(0)


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


def _split(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in choices:
            raise ValueError
        return text.strip()

    return parse


def _list(parse_one: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    """A non-empty comma-separated list, duplicates dropped, each item parsed by ``parse_one``."""

    def parse(text: str) -> tuple[Any, ...]:
        values = tuple(parse_one(v) for v in _split(text))
        if not values:
            raise ValueError
        return values

    return parse


def _endpoint(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError
    return text.strip()


def _identifier(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text.strip()):
        raise ValueError
    return text.strip()


@dataclass(frozen=True)
class Option:
    """One setting: its flag, ini key, optional environment variable, parser and default."""

    metavar: str
    help: str
    expected: str
    parse: Callable[[str], Any]
    default: str | None  # as the help shows it; parsed, the Settings field's default
    env: str | None = None
    flag: bool = False  # a store_true switch
    name: str = ""  # the Settings field; flag --trainperf-<name with dashes>, ini key trainperf_<name>

    @property
    def cli(self) -> str:
        return "--trainperf-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "trainperf_" + self.name

    @property
    def value(self) -> Any:
        """The parsed default."""
        return None if self.default is None else self.parse(self.default)


_OPTION = "trainperf_option"


def _option(
    metavar: str,
    help: str,
    expected: str,
    parse: Callable[[str], Any],
    default: str | None,
    *,
    env: str | None = None,
    flag: bool = False,
) -> Any:
    """A Settings field that is also an option; its default is ``default`` parsed."""
    declared = Option(metavar, help, expected, parse, default, env, flag)
    return field(default=declared.value, metadata={_OPTION: declared})


# The common kinds of option, so that each field below reads as one declaration.
def _switch(help: str, *, env: str | None = None) -> Any:
    return _option("", help, "'1' or '0'", _on_off, "0", env=env, flag=True)


def _toggle(help: str, default: str) -> Any:
    return _option("on|off", help, "'on' or 'off'", _on_off, default)


def _count(help: str, default: str, *, env: str | None = None) -> Any:
    return _option("N", help, "a positive integer", _positive_int, default, env=env)


def _seconds(help: str, default: str) -> Any:
    return _option("SECONDS", help, "a positive number", _positive_float, default)


_LIST = "a comma-separated list of "


def _axis(help: str, choices: Sequence[str]) -> Any:
    return _option("LIST", help, _LIST + ", ".join(choices), _list(_choice(choices)), None)


@dataclass(frozen=True)
class Settings:
    """The parsed --trainperf-* options (built by ``trainperf.pytest_edge.options``, or directly with keywords)."""

    matrix: str = _option(
        "NAME",
        "base case matrix: 'default' (curated) or 'full' (every runnable combination)",
        "'default' or 'full'",
        _choice(("default", "full")),
        "default",
    )
    device: tuple[str, ...] | None = _axis("replace the device axis of every case", cases.DEVICES)
    compile: tuple[str, ...] | None = _axis("replace the compile-mode axis", cases.COMPILE_MODES)
    precision: tuple[str, ...] | None = _axis("replace the precision axis", cases.PRECISIONS)
    memory_format: tuple[str, ...] | None = _axis("replace the memory-format axis", cases.MEMORY_FORMATS)
    model: tuple[str, ...] | None = _option(
        "LIST",
        "replace the model axis: resnet18, resnet18_cifar, any torchvision classification model name, or "
        "package.module:factory",
        _LIST + "model names",
        _list(str),
        None,
    )
    batch_size: tuple[int, ...] | None = _option(
        "LIST", "replace the batch-size axis", _LIST + "positive integers", _list(_positive_int), None
    )
    optimizer: tuple[str, ...] | None = _axis("replace the Adam implementation axis", cases.OPTIMIZERS)
    data_dir: str | None = _option(
        "DIR",
        "local CIFAR-10 in torchvision's format (never downloaded); unset: the deterministic synthetic CIFAR-shaped "
        "dataset",
        "a directory",
        str,
        None,
        env="TRAINPERF_DATA_DIR",
    )
    synthetic_images: int = _count("images in the synthetic dataset", "50000")
    warmup_steps: int = _count("untimed steps before the timed rounds (compilation happens here)", "5")
    rounds: int = _option("N", "timed rounds (windows) per step benchmark", "an integer >= 1", _positive_int, "10")
    window_s: float = _seconds("target length of one timed window; steps per window are calibrated to it", "1.0")
    steps: int | None = _option(
        "N|auto",
        "steps per timed window instead of calibrating",
        "'auto' or a positive integer",
        _auto_or(_positive_int),
        "auto",
    )
    epoch_images: int | None = _option(
        "N|auto",
        "images per epoch benchmark round; auto: the whole dataset on a GPU, 5120 on CPU",
        "'auto' or a positive integer",
        _auto_or(_positive_int),
        "auto",
    )
    epoch_rounds: int = _count("timed epochs per epoch benchmark", "5")
    num_workers: int | None = _option(
        "N|auto",
        "DataLoader workers in the epoch benchmark; auto: min(8, cores) with a GPU, 0 on CPU (workers would steal "
        "the cores the model trains on)",
        "'auto' or an integer >= 0",
        _auto_or(_non_negative_int),
        "auto",
    )
    loader_workers: tuple[int, ...] | None = _option(
        "LIST|auto",
        f"num_workers values of the DataLoader benchmark; auto: {','.join(map(str, cases.DEFAULT_LOADER_WORKERS))} "
        "capped at the usable cores (a list given here runs as given)",
        "'auto' or " + _LIST + "integers >= 0",
        _auto_or(_list(_non_negative_int)),
        "auto",
    )
    loader_batches: int = _count("batches per DataLoader benchmark round", "50")
    loader_rounds: int = _count("timed rounds per DataLoader benchmark", "10")
    tf32: bool = _toggle("TF32 for matmul and cuDNN convolutions (float32_matmul_precision 'high')", "on")
    cudnn_benchmark: bool = _toggle("torch.backends.cudnn.benchmark", "on")
    require_cuda: bool = _switch(
        "fail instead of skipping when CUDA is unavailable (for GPU CI jobs)", env="TRAINPERF_REQUIRE_CUDA"
    )
    require_idle_gpu: bool = _switch("fail instead of warning when other processes use the GPU or it is already busy")
    sample_period_s: float = _seconds("NVML/memory sampling period during timed rounds", "0.1")
    seed: int = _option("N", "seed for data, weights and shuffling", "an integer >= 0", _non_negative_int, "0")
    baseline_dir: str = _option(
        "DIR",
        "directory of committed baselines, one <machine key>.json per machine (relative to the rootdir)",
        "a directory",
        str,
        "baselines",
    )
    baseline: str | None = _option(
        "PATH",
        "compare with this baseline file instead of the one for this machine's key",
        "a baseline JSON file",
        str,
        None,
    )
    tolerance: float | None = _option(
        "FRACTION",
        "allowed throughput drop before a significant one fails the run; overrides markers and baseline files",
        "a fraction (0.05) or a percentage (5%) between 0 and 1",
        parse_fraction,
        None,
    )
    alpha: float = _option(
        "P",
        "one-sided false-alarm level of a first measurement against its reference, before confirmation",
        "a number between 0 and 1",
        parse_fraction,
        "0.02",
    )
    strict: bool = _switch(
        "fail on benchmarks missing from the run, on inconclusive drops and on a machine without a baseline"
    )
    update_baselines: bool = _switch(
        "record this machine's baseline file from this run and more fresh-process runs (merged, atomically)"
    )
    confirm: bool = _toggle(
        "measure a benchmark that looks regressed again in a fresh process and fail only when that run agrees", "on"
    )
    confirm_timeout_s: float = _seconds(
        "time limit of the confirming fresh process (all suspects together); past it the first verdict stands", "600"
    )
    busy_limit: float = _option(
        "FRACTION",
        "share of the machine's CPU other processes may take while a regression is measured; above it the gate "
        "waits for a quiet machine and measures again, and gives no verdict (exit 7) if it stays busy",
        "a fraction (0.1) or a percentage (10%) between 0 and 1, or 'off'",
        _busy_limit,
        "0.10",
    )
    run_noise: float = _option(
        "FRACTION",
        "between-run noise assumed before a reference has measured its own (pooled with it on 2 degrees of freedom)",
        "a fraction (0.03) or a percentage (3%) between 0 and 1",
        parse_fraction,
        "0.03",
    )
    record_min_runs: int = _option(
        "N",
        "independent runs (fresh processes) a recorded baseline needs at least",
        "an integer >= 2",
        _at_least(2),
        "3",
    )
    record_max_runs: int = _option(
        "N",
        "most runs a recording measures while a benchmark's threshold is still above its tolerance",
        "an integer >= 2",
        _at_least(2),
        "5",
    )
    record_budget_s: float = _seconds(
        "time budget of a recording, the first run included; fewer than the minimum runs in it refuses", "1200"
    )
    verdict_json: str | None = _option(
        "PATH", "write the gate's verdicts as JSON (readable by trainperf report)", "a file path", str, None
    )
    allow_mismatch: bool = _switch("compare with a baseline or run recorded on a different machine key")
    world_sizes: tuple[int, ...] | None = _option(
        "LIST|auto",
        "world sizes (total processes) of the distributed benchmarks; auto: nnodes x 1..visible GPUs for CUDA "
        "cases, nnodes x 1,2 for CPU cases",
        "'auto' or " + _LIST + "positive integers",
        _auto_or(_list(_positive_int)),
        "auto",
    )
    nnodes: int = _count(
        "nodes of a multi-node distributed run: start the same pytest command on each (needs "
        "--trainperf-rdzv-endpoint)",
        "1",
        env="TRAINPERF_NNODES",
    )
    rdzv_endpoint: str | None = _option(
        "HOST:PORT",
        "torchrun c10d rendezvous endpoint; unset on one node: a free local port (torchrun --standalone)",
        "HOST:PORT",
        _endpoint,
        None,
        env="TRAINPERF_RDZV_ENDPOINT",
    )
    rdzv_id: str = _option(
        "ID",
        "rendezvous id prefix, the same on every node of one job (case and world size are appended)",
        "letters, digits, '_', '.' or '-'",
        _identifier,
        "trainperf",
        env="TRAINPERF_RDZV_ID",
    )
    dist_timeout_s: float = _seconds(
        "wall-clock limit of one distributed launch (all ranks, start to finish); past it the ranks are killed and "
        "the case fails",
        "600",
    )
    # The case axes given on the command line, for cases.build_matrix; not an option of its own.
    overrides: dict[str, tuple[Any, ...]] = field(default_factory=dict, compare=False)

    def cases(self, *, mps_available: bool = False) -> list[cases.Case]:
        return cases.build_matrix(self.matrix, self.overrides, mps_available=mps_available)

    def distributed_cases(self, *, gpus_per_node: int) -> list[cases.DistributedCase]:
        return cases.distributed_matrix(
            self.overrides, self.world_sizes, gpus_per_node=gpus_per_node, nnodes=self.nnodes
        )

    def loader_worker_counts(self, cores: int | None = None) -> cases.LoaderWorkers:
        """The DataLoader benchmark's worker counts, and the default ones dropped for want of cores (``cores``,
        else this process's usable cores); its ``note()`` is the run header's line about them."""
        if cores is None:
            from trainperf.machine.environment import usable_cores

            cores = usable_cores()
        return cases.loader_workers(self.loader_workers, cores)

    def recorded(self) -> dict[str, Any]:
        """The measurement settings, for extra_info and machine info."""
        keep = ("warmup_steps", "rounds", "window_s", "steps", "tf32", "cudnn_benchmark", "seed", "data_dir")
        return {k: getattr(self, k) for k in keep}


# In field order, which is the order of pytest --help.
OPTIONS: tuple[Option, ...] = tuple(
    replace(f.metadata[_OPTION], name=f.name) for f in fields(Settings) if _OPTION in f.metadata
)
