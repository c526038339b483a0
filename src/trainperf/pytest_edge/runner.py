"""The pytest side of a measurement: skip or fail a case for a reason, record extra_info, keep results."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from trainperf.machine.load import MachineLoad, Window
from trainperf.measurement.cases import Case, DistributedCase, LoaderCase
from trainperf.pytest_edge.compat import discard_numbers
from trainperf.pytest_edge.progress import progress_for
from trainperf.pytest_edge.state import state_of
from trainperf.results import (
    CompileTime,
    DdpStep,
    Epoch,
    Identity,
    Loader,
    Result,
    TrainStep,
    Utilisation,
    epoch_config,
    loader_config,
    trainer_config,
)
from trainperf.settings import Settings

if TYPE_CHECKING:
    import torch

    from trainperf.measurement.training import Trainer
    from trainperf.telemetry import Sampler

T = TypeVar("T")
R = TypeVar("R", bound=Result)


@dataclass(frozen=True)
class Finished:
    """One finished benchmark of this run: its test, its result record, its tolerance marker."""

    nodeid: str
    name: str
    record: Result
    tolerance: float | None = None  # from a trainperf_tolerance marker


def _skip(reason: str, device: str, settings: Settings) -> NoReturn:
    """Skip with ``reason``; fail instead when it is a missing GPU under --trainperf-require-cuda."""
    from trainperf.machine.environment import device_unavailable_reason

    if device == "cuda" and settings.require_cuda and reason == device_unavailable_reason(device):
        pytest.fail(f"{reason}, and TRAINPERF_REQUIRE_CUDA/--trainperf-require-cuda is set", pytrace=False)
    pytest.skip(reason)


def check_runnable(device: str, settings: Settings, case: Case | None = None) -> None:
    """Skip (or, for CUDA under --trainperf-require-cuda, fail) a case this machine cannot run."""
    from trainperf.measurement.runnable import skip_reason

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
        torch.compiler.reset()  # public since torch 2.1; clears Dynamo caches
    gc.collect()
    if device_type == "cuda":
        torch.cuda.empty_cache()


def call_or_fail(what: str, fn: Callable[[], T], *, benchmark: Any = None) -> T:
    """``fn()``, turning CUDA out-of-memory and untrustworthy measurements into a failure of this case alone.

    No context manager and no ``raise`` inside ``except``: the failure pytest keeps (until the next test) must
    not chain to the original error, whose traceback holds the case's tensors on the device.
    """
    import torch

    from trainperf.measurement.measure import MeasurementError

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
        discard_numbers(benchmark)
    if oom:
        release_device_memory("cuda", compiled=False)
    pytest.fail(message, pytrace=False)


def _trainer_config(trainer: Trainer) -> dict[str, Any]:
    return trainer_config(trainer.case.as_dict(), type(trainer.optimizer))


class Runner:
    """Runs one measurement for a test and files its result record in the benchmark's extra_info."""

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

    def train_step(self, trainer: Trainer) -> TrainStep:
        """Training-step throughput of ``trainer``'s case."""
        from trainperf.measurement import measure

        s, what = self.settings, f"train_step[{trainer.case.id}]"
        self.benchmark.group = "train_step"
        result = self._measured(
            what,
            lambda: measure.train_step(
                self.benchmark,
                trainer,
                make_sampler(trainer.device, s),
                warmup_steps=s.warmup_steps,
                rounds=s.rounds,
                window_s=s.window_s,
                steps=s.steps,
                identity=Identity(case_id=trainer.case.id, config=_trainer_config(trainer)),
                per_unit=True,
                on_round=progress_for(self.request.config, what),
            ),
        )
        return self._record(replace(result, utilisation=self._mfu(trainer, result.throughput.img_per_s)))

    def epoch(self, trainer: Trainer, loader: Any) -> Epoch:
        """Whole epochs of ``trainer``'s case through ``loader`` (the ``trainperf_epoch_loader`` fixture's)."""
        from trainperf.measurement import measure

        s, case = self.settings, trainer.case
        config = epoch_config(_trainer_config(trainer), loader)
        self.benchmark.group = "epoch"
        what = f"epoch[{case.id}]"
        result = self._measured(
            what,
            lambda: measure.epoch(
                self.benchmark,
                trainer,
                loader,
                make_sampler(trainer.device, s),
                rounds=s.epoch_rounds,
                non_blocking=bool(getattr(loader, "pin_memory", False)) and trainer.device.type == "cuda",
                identity=Identity(case_id=case.id, config=config),
                per_unit=True,
                on_round=progress_for(self.request.config, what),
            ),
        )
        return self._record(replace(result, utilisation=self._mfu(trainer, result.throughput.img_per_s)))

    def dataloader(self, case: LoaderCase, dataset: Any) -> Loader:
        """Images per second of one loader configuration, delivered to its device."""
        import torch

        from trainperf.measurement import data, measure
        from trainperf.measurement.batch_fit import loader_batch_size

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
        identity = Identity(case_id=case.id, config=loader_config(case.device, case.workers, case.pin_memory, batch))
        what = f"dataloader[{case.id}]"
        result = self._measured(
            what,
            lambda: measure.dataloader(
                self.benchmark,
                build_loader(),
                device,
                rounds=s.loader_rounds,
                non_blocking=case.pin_memory,
                identity=identity,
                per_unit=True,
                on_round=progress_for(self.request.config, what),
            ),
        )
        return self._record(result)

    def compile_time(self, case: Case) -> CompileTime:
        """Cold- and warm-cache compile time of ``case``, each in a fresh process."""
        from trainperf.measurement import compile_time

        s = self.settings
        check_runnable(case.device, s, case)
        box: list[CompileTime] = []

        def measure_once() -> None:
            box.append(
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
        return self._record(replace(box[-1], identity=Identity(case_id=case.id, config=case.as_dict())))

    def ddp_train_step(self, dcase: DistributedCase) -> DdpStep:
        """Data-parallel training-step throughput of ``dcase``: one torchrun launch, all its ranks."""
        from trainperf.distributed import case as ddp

        if reason := ddp.skip_reason(dcase):
            _skip(reason, dcase.case.device, self.settings)
        self.benchmark.group = "ddp_train_step"
        launched = self._measured(f"ddp_train_step[{dcase.id}]", lambda: ddp.run(dcase, self.settings))
        record = ddp.record(dcase, launched)
        if record is None:
            pytest.skip(f"global rank 0 of {dcase.id} ran on another node; the run on that node records this case")
        replay_rounds(self.benchmark, list(record.window_s_rounds), record.steps_per_round or 1)
        return self._record(record)

    def _mfu(self, trainer: Trainer, img_per_s: float) -> Utilisation:
        from trainperf.measurement.mfu import utilisation

        return utilisation(trainer.model, trainer.case, img_per_s, tf32=self.settings.tf32)

    def _record(self, record: R) -> R:
        """Complete the record (backend flags, settings, the machine's load) and file it."""
        from trainperf.machine.environment import backend_flags

        # A distributed result brings the flags its ranks ran with.
        identity = replace(
            record.identity,
            backend_flags=record.identity.backend_flags or backend_flags(),
            settings=self.settings.recorded(),
            machine_load=self._load,
        )
        record = replace(record, identity=identity)
        self.benchmark.extra_info.update(record.to_extra_info())
        node = self.request.node
        state_of(self.request.config).results.append(Finished(node.nodeid, node.name, record, self.tolerance))
        return record


def replay_rounds(benchmark: Any, window_s: list[float], steps_per_round: int) -> None:
    """Give pytest-benchmark the windows the ranks timed (the slowest rank's per window), so its table, JSON and
    --benchmark-compare show training steps, not the process launch around them. Through its public API only:
    it times a sleep of each window's length (within sleep's precision, about 0.1 ms), which costs those seconds
    once more, as ``steps_per_round`` iterations: its statistics are per step, like a single-process case's."""
    from trainperf.measurement.measure import unit_rounds

    durations = iter(window_s)
    unit_rounds(benchmark, lambda: time.sleep(next(durations)), rounds=len(window_s), units=steps_per_round)


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
