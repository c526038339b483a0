"""The pytest side of a measurement: skip or fail a case for a reason, record extra_info, keep results."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from trainperf.cases import Case, DistributedCase, LoaderCase
from trainperf.machine_load import MachineLoad, Window
from trainperf.settings import Settings

if TYPE_CHECKING:
    import torch

    from trainperf.distributed import LaunchConfig
    from trainperf.telemetry import Sampler
    from trainperf.training import Trainer

RESULTS_KEY = pytest.StashKey[list["Result"]]()
T = TypeVar("T")


@dataclass
class Result:
    """One finished benchmark, for the end-of-run table."""

    nodeid: str
    name: str
    kind: str
    case_id: str
    extra: dict[str, Any] = field(default_factory=dict)
    tolerance: float | None = None  # from a trainperf_tolerance marker


def skip_reason(device: str, case: Case | None = None) -> str | None:
    """Why this machine skips a case on ``device`` (None: it runs it). Tests act on it through check_runnable;
    the plugin asks it before any test runs, since a case that skips needs no data."""
    from trainperf.environment import compile_unsupported_reason, device_unavailable_reason

    if case is not None and (reason := case.unsupported_reason()):
        return f"unsupported combination: {reason}"
    if reason := device_unavailable_reason(device):
        return reason
    if case is not None and case.compiled and (reason := compile_unsupported_reason(device)):
        return reason
    return None


def ddp_skip_reason(dcase: DistributedCase) -> str | None:
    """Why this machine skips a distributed case (None: it launches it)."""
    import torch

    from trainperf import distributed
    from trainperf.environment import visible_gpus

    if reason := dcase.unsupported_reason():
        return f"unsupported combination: {reason}"
    if reason := skip_reason(dcase.case.device, dcase.case):
        return reason
    if not torch.distributed.is_available():
        return "this torch build has no torch.distributed"
    if dcase.case.device == "cuda" and not torch.distributed.is_nccl_available():
        return "this torch build has no NCCL backend"
    return distributed.capacity_reason(dcase, gpus_per_node=visible_gpus(), cpus=distributed.usable_cpus())


def _skip(reason: str, device: str, settings: Settings) -> NoReturn:
    """Skip with ``reason``; fail instead when it is a missing GPU under --trainperf-require-cuda."""
    from trainperf.environment import device_unavailable_reason

    if device == "cuda" and settings.require_cuda and reason == device_unavailable_reason(device):
        pytest.fail(f"{reason}, and TRAINPERF_REQUIRE_CUDA/--trainperf-require-cuda is set", pytrace=False)
    pytest.skip(reason)


def check_runnable(device: str, settings: Settings, case: Case | None = None) -> None:
    """Skip (or, for CUDA under --trainperf-require-cuda, fail) a case this machine cannot run."""
    if reason := skip_reason(device, case):
        _skip(reason, device, settings)


@cache
def _gpu(index: int) -> Any:
    from trainperf.telemetry import open_gpu

    return open_gpu(index)


def make_sampler(device: torch.device, settings: Settings) -> Sampler:
    from trainperf.telemetry import Sampler

    gpu = None
    if device.type == "cuda":
        import torch

        gpu = _gpu(device.index if device.index is not None else torch.cuda.current_device())
    return Sampler(gpu=gpu, period_s=settings.sample_period_s)


def release_device_memory(device_type: str, compiled: bool) -> None:
    """Free what a finished case held so the next one starts clean (CUDA-graph pools included)."""
    import torch

    if compiled:
        torch._dynamo.reset()
    gc.collect()
    if device_type == "cuda":
        torch.cuda.empty_cache()


def call_or_fail(what: str, fn: Callable[[], T], *, benchmark: Any = None) -> T:
    """``fn()``, turning CUDA out-of-memory and untrustworthy measurements into a failure of this case alone.

    No context manager and no ``raise`` inside ``except``: the failure pytest keeps (until the next test) must
    not chain to the original error, whose traceback holds the case's tensors on the device.
    """
    import torch

    from trainperf.measure import MeasurementError

    try:
        return fn()
    except torch.cuda.OutOfMemoryError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        message = f"CUDA out of memory in {what}: {first} (try a smaller --trainperf-batch-size)"
        oom = True
    except MeasurementError as exc:
        message = f"{what}: {exc}"
        oom = False
    if benchmark is not None:
        benchmark.has_error = True  # keep the numbers of a failed case out of the saved JSON
    if oom:
        release_device_memory("cuda", compiled=False)
    pytest.fail(message, pytrace=False)


def _trainer_config(trainer: Trainer) -> dict[str, Any]:
    """The case, and the optimizer class actually used (the ``trainperf_optimizer`` fixture can replace Adam)."""
    optimizer = type(trainer.optimizer)
    return {**trainer.case.as_dict(), "optimizer_class": f"{optimizer.__module__}.{optimizer.__qualname__}"}


class Runner:
    """Runs one measurement for a test and files its numbers in the benchmark's extra_info."""

    def __init__(self, benchmark: Any, request: pytest.FixtureRequest, settings: Settings) -> None:
        self.benchmark = benchmark
        self.request = request
        self.settings = settings
        # Read before measuring: a bad marker fails the case before it spends any time.
        self.tolerance = tolerance_marker(request.node)
        self._load: MachineLoad | None = None

    def _measured(self, what: str, fn: Callable[[], T]) -> T:
        """``call_or_fail`` with the machine's load by other work over the measurement noted for the record."""
        window = Window()
        with window.measuring():
            result = call_or_fail(what, fn, benchmark=self.benchmark)
        self._load = window.load
        return result

    def train_step(self, trainer: Trainer) -> dict[str, Any]:
        """Training-step throughput of ``trainer``'s case."""
        from trainperf import measure

        s = self.settings
        self.benchmark.group = "train_step"
        result = self._measured(
            f"train_step[{trainer.case.id}]",
            lambda: measure.train_step(
                self.benchmark,
                trainer,
                make_sampler(trainer.device, s),
                warmup_steps=s.warmup_steps,
                rounds=s.rounds,
                window_s=s.window_s,
                steps=s.steps,
            ),
        )
        return self._record(
            "train_step", trainer.case.id, _trainer_config(trainer), {**result, **self._mfu(trainer, result)}
        )

    def epoch(self, trainer: Trainer, loader: Any) -> dict[str, Any]:
        """Whole epochs of ``trainer``'s case through ``loader`` (the ``trainperf_epoch_loader`` fixture's)."""
        from trainperf import measure

        s, case = self.settings, trainer.case
        # Read off the loader itself, so an overridden loader is recorded as it is.
        pin = bool(getattr(loader, "pin_memory", False))
        dataset = getattr(loader, "dataset", None)
        loader_info = {
            "num_workers": getattr(loader, "num_workers", None),
            "pin_memory": pin,
            "persistent_workers": bool(getattr(loader, "persistent_workers", False)),
            "drop_last": getattr(loader, "drop_last", None),
            "dataset_images": len(dataset) if hasattr(dataset, "__len__") else None,
        }
        self.benchmark.group = "epoch"
        result = self._measured(
            f"epoch[{case.id}]",
            lambda: measure.epoch(
                self.benchmark,
                trainer,
                loader,
                make_sampler(trainer.device, s),
                rounds=s.epoch_rounds,
                non_blocking=pin and trainer.device.type == "cuda",
            ),
        )
        return self._record(
            "epoch", case.id, {**_trainer_config(trainer), **loader_info}, {**result, **self._mfu(trainer, result)}
        )

    def dataloader(self, case: LoaderCase, dataset: Any) -> dict[str, Any]:
        """Images per second of one loader configuration, delivered to its device."""
        import torch

        from trainperf import data, measure
        from trainperf.batch_fit import loader_batch_size

        s = self.settings
        check_runnable(case.device, s)
        batch = loader_batch_size(s)
        limit = s.loader_batches * batch
        device = torch.device(case.device)

        def build_loader() -> Any:
            # Inside call_or_fail: the resident loader copies the whole dataset to the device.
            if case.workers is None:
                return data.DeviceResidentLoader(dataset, batch, device, seed=s.seed, limit=limit)
            return data.make_loader(
                dataset,
                batch,
                num_workers=case.workers,
                pin_memory=case.pin_memory,
                persistent_workers=True,
                seed=s.seed,
                limit=limit,
            )

        self.benchmark.group = "dataloader"
        result = self._measured(
            f"dataloader[{case.id}]",
            lambda: measure.dataloader(
                self.benchmark, build_loader(), device, rounds=s.loader_rounds, non_blocking=case.pin_memory
            ),
        )
        config = {
            "device": case.device,
            "num_workers": case.workers,
            "pin_memory": case.pin_memory,
            "resident": case.workers is None,
            "batch_size": batch,
        }
        return self._record("dataloader", case.id, config, result)

    def compile_time(self, case: Case) -> dict[str, Any]:
        """Cold- and warm-cache compile time of ``case``, each in a fresh process."""
        from trainperf import compile_time

        s = self.settings
        check_runnable(case.device, s, case)
        box: dict[str, Any] = {}

        def measure_once() -> None:
            box.update(
                compile_time.cold_and_warm(
                    case,
                    warmup_steps=max(s.warmup_steps, 3),
                    tf32=s.tf32,
                    cudnn_benchmark=s.cudnn_benchmark,
                    seed=s.seed,
                )
            )

        self.benchmark.group = "compile_time"
        self._measured(
            f"compile_time[{case.id}]",
            lambda: self.benchmark.pedantic(measure_once, rounds=1, iterations=1, warmup_rounds=0),
        )
        return self._record("compile_time", case.id, case.as_dict(), box)

    def ddp_train_step(self, dcase: DistributedCase) -> dict[str, Any]:
        """Data-parallel training-step throughput of ``dcase``: one torchrun launch, all its ranks."""

        from trainperf import distributed
        from trainperf.environment import visible_gpus

        s, case = self.settings, dcase.case
        if reason := ddp_skip_reason(dcase):
            _skip(reason, case.device, s)
        gpus, cpus = visible_gpus(), distributed.usable_cpus()
        # CPU ranks get the threads of the case's largest world size that fits here, at every world size.
        max_per_node = max(
            (
                d.nproc_per_node
                for d in s.distributed_cases(gpus_per_node=gpus)
                if d.case == case and d.nnodes == dcase.nnodes and d.nproc_per_node <= cpus
            ),
            default=None,
        )
        self.benchmark.group = "ddp_train_step"
        launched = self._measured(
            f"ddp_train_step[{dcase.id}]",
            lambda: distributed.launch(dcase, _launch_config(s), max_per_node=max_per_node),
        )
        if launched.result is None:
            pytest.skip(f"global rank 0 of {dcase.id} ran on another node; the run on that node records this case")
        result = launched.result
        replay_rounds(self.benchmark, result["window_s_rounds"])
        group = case.id + (f"-nodes{dcase.nnodes}" if dcase.nnodes > 1 else "")
        config_info = {**case.as_dict(), "world_size": dcase.world_size, "nnodes": dcase.nnodes}
        extra = {**result, "distributed_group": group, "launch_s": round(launched.wall_s, 3)}
        info = self._record("ddp_train_step", dcase.id, config_info, extra)
        # Each new world size can change the reference of the case's others: recompute them all. Results hold
        # the benchmarks' own extra_info, so what pytest-benchmark saves at the end is the final figure.
        results = self.request.config.stash[RESULTS_KEY]
        distributed.group_efficiencies(r.extra for r in results if r.kind == "ddp_train_step")
        return info

    def _mfu(self, trainer: Trainer, result: dict[str, Any]) -> dict[str, Any]:
        from trainperf.mfu import utilisation

        return utilisation(trainer.model, trainer.case, result["img_per_s"], tf32=self.settings.tf32)

    def _record(self, kind: str, case_id: str, config: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        from trainperf.environment import backend_flags

        info = {
            "trainperf_kind": kind,
            "case_id": case_id,
            "config": config,
            # A distributed result brings the flags its ranks ran with.
            "backend_flags": backend_flags(),
            **result,
            "settings": self.settings.recorded(),
        }
        if self._load is not None:
            info["machine_load"] = self._load.as_dict()
        self.benchmark.extra_info.update(info)
        node = self.request.node
        # The benchmark's own dict, so a later result can still complete it (scaling efficiency) before saving.
        self.request.config.stash.setdefault(RESULTS_KEY, []).append(
            Result(node.nodeid, node.name, kind, case_id, self.benchmark.extra_info, self.tolerance)
        )
        return info


def _launch_config(s: Settings) -> LaunchConfig:
    """The settings every rank needs; each has the same name on Settings, except the launch timeout."""
    from dataclasses import fields

    from trainperf.distributed import LaunchConfig

    shared = {f.name: getattr(s, f.name) for f in fields(LaunchConfig) if f.name != "timeout_s"}
    return LaunchConfig(**shared, timeout_s=s.dist_timeout_s)


class _ReplayClock:
    """A pytest-benchmark timer that replays window durations measured elsewhere: start, start + d1, start + d1,
    start + d1 + d2, ... one pair of reads per round."""

    __name__ = "slowest_rank_window_clock"

    def __init__(self, durations: list[float]) -> None:
        self._durations = iter(durations)
        self._now = 0.0
        self._reads = 0

    def __call__(self) -> float:
        self._reads += 1
        if self._reads % 2 == 0:
            self._now += next(self._durations)
        return self._now


def replay_rounds(benchmark: Any, window_s: list[float]) -> None:
    """Record windows timed by the ranks (slowest rank per window) as the benchmark's rounds, so pytest-benchmark's
    table, JSON and --benchmark-compare show the training windows, not the process launch around them."""
    benchmark._timer = _ReplayClock(window_s)
    benchmark.pedantic(lambda: None, rounds=len(window_s), iterations=1, warmup_rounds=0)


def tolerance_marker(node: pytest.Item) -> float | None:
    """The fraction a ``@pytest.mark.trainperf_tolerance(0.1)`` (or ``("10%")``) marker allows, if any."""
    marker = node.get_closest_marker("trainperf_tolerance")
    if marker is None:
        return None
    from trainperf.settings import parse_fraction

    try:
        if len(marker.args) != 1:
            raise ValueError
        return parse_fraction(str(marker.args[0]))
    except ValueError:
        pytest.fail(
            f"trainperf_tolerance marker on {node.nodeid}: expected one fraction (0.1) or percentage ('10%') "
            f"between 0 and 1, got {marker.args!r}",
            pytrace=False,
        )
