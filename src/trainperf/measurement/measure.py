"""The timed parts: training-step windows, epochs, the DataLoader alone, and compile time.

Nothing here imports pytest: ``benchmark`` is anything with pytest-benchmark's ``pedantic``.  A result that
must not be trusted raises ``MeasurementError``; the pytest layer turns it into a failed case.  With
``per_unit`` pytest-benchmark's statistics are per step, batch or image (``unit_rounds``), not per round.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from trainperf.measurement.checks import MeasurementError, check_training, compile_outcome
from trainperf.measurement.training import compile_counters, synchronize
from trainperf.results import Compilation, Epoch, Health, Identity, Loader, Rates, TrainStep

if TYPE_CHECKING:
    import torch

    from trainperf.measurement.training import Trainer
    from trainperf.telemetry import Sampler, TelemetrySummary

# torch.utils.benchmark's Measurement warns past this IQR/median; so do we.
NOISY_SPREAD = 0.10
# Calibration window: long enough to average out launch jitter, short enough to stay cheap.
CALIBRATION_S = 0.25
MAX_STEPS_PER_WINDOW = 100_000

OnRound = Callable[[int, int, float], None]
"""Told after each timed round: rounds done, rounds in all, that round's img/s (0 done: the untimed warm-up's)."""


def spread(samples: Sequence[float]) -> float:
    """Interquartile range over median (0.0 for fewer than two samples)."""
    if len(samples) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    median = statistics.median(samples)
    return (q3 - q1) / median if median else math.inf


def rate_summary(images: int, seconds: Sequence[float]) -> Rates:
    """img/s per round, their median, spread, and whether the spread is too wide to trust."""
    rates = [images / s for s in seconds]
    rel = spread(rates)
    return Rates(
        img_per_s=round(statistics.median(rates), 3),
        img_per_s_rounds=tuple(round(r, 3) for r in rates),
        img_per_s_spread=round(rel, 5),
        noisy=rel > NOISY_SPREAD,
    )


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def _loss(trainer: Trainer) -> float:
    assert trainer.last_loss is not None
    return float(trainer.last_loss.float().item())


def _memory_start(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _memory_peak(device: torch.device, sampled_rss_mib: float | None) -> tuple[float | None, str]:
    """Peak memory of the timed rounds, and what it is: the CUDA allocator's peak, or the sampled process RSS."""
    import torch

    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1), "cuda_max_allocated"
    return sampled_rss_mib, "process_rss"


def unit_rounds(
    benchmark: Any,
    one_round: Callable[[], None],
    *,
    rounds: int,
    units: int,
    setup: Callable[[], None] | None = None,
    per_unit: bool = True,
) -> None:
    """``rounds`` pytest-benchmark rounds of ``one_round`` (``setup`` first), with statistics per unit of work.

    pytest-benchmark calls the target ``iterations`` times a round and divides the round's time by that: the
    round runs whole in the first of ``units`` calls (the window trainperf times itself, one synchronization;
    its own numbers keep their meaning) and the rest return at once (~0.1 us each), so its mean and ops are per
    unit and move with the work per unit. ``setup`` runs in that first call (pytest-benchmark refuses it with
    ``iterations`` > 1), outside trainperf's timing; calls past the rounds (its extra call, cprofile) do
    nothing. ``per_unit=False``: one call a round, for stand-ins that ignore ``iterations`` (the DDP worker's).
    """
    if not per_unit:
        benchmark.pedantic(one_round, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
        return
    calls = 0

    def target() -> None:
        nonlocal calls
        if calls % units == 0 and calls < rounds * units:
            if setup is not None:
                setup()
            one_round()
        calls += 1

    benchmark.pedantic(target, rounds=rounds, iterations=units, warmup_rounds=0)


def _timed_rounds(
    benchmark: Any, target: Callable[[], None], sampler: Sampler, rounds: int, units: int, per_unit: bool
) -> Any:
    """pytest-benchmark rounds of ``target`` with the sampler running and a mark at each round's start."""
    sampler.start()
    try:
        unit_rounds(benchmark, target, rounds=rounds, units=units, setup=sampler.mark, per_unit=per_unit)
    finally:
        telemetry = sampler.stop()
    return telemetry


def _training_outcome(
    trainer: Trainer,
    telemetry: TelemetrySummary,
    loss_first: float,
    at_start: Compilation,
    before_rounds: Compilation,
) -> Health:
    """Memory, telemetry, loss and recompilation of the timed rounds; raises when they cannot be trusted."""
    compiled = compile_outcome(trainer, at_start, before_rounds)
    loss_last = _loss(trainer)
    check_training(loss_first, loss_last)
    peak, kind = _memory_peak(trainer.device, telemetry.rss_peak_mib)
    return Health(
        loss_first=round(loss_first, 5),
        loss_last=round(loss_last, 5),
        peak_mem_mib=peak,
        peak_mem_kind=kind,
        telemetry=telemetry,
        compilation=compiled,
    )


def _case_identity(trainer: Trainer) -> Identity:
    """The identity of a result measured without one given: the trainer's case (the runner passes its own)."""
    return Identity(case_id=trainer.case.id, config=trainer.case.as_dict())


def warm_up(trainer: Trainer, steps: int) -> tuple[list[float], float]:
    """Run untimed warm-up steps one at a time (compilation, cuDNN autotuning and CUDA-graph recording happen
    here); returns each step's seconds and the first step's loss."""
    times = [timed(lambda: trainer.run(1), trainer.device)]
    loss_first = _loss(trainer)
    times += [timed(lambda: trainer.run(1), trainer.device) for _ in range(steps - 1)]
    return times, loss_first


ReduceMax = Callable[[Sequence[float]], list[float]]


def _local(values: Sequence[float]) -> list[float]:
    return list(values)


def calibrate(
    trainer: Trainer,
    last_warmup_s: float,
    window_s: float,
    fixed_steps: int | None,
    reduce_max: ReduceMax = _local,
) -> tuple[int, float]:
    """Steps per timed window and the steady per-step seconds, from one untimed window.

    ``reduce_max`` takes the maximum over the processes of a distributed run, so every rank runs the same
    number of steps (a rank with one step more would wait forever in its gradient all-reduce).
    """
    slowest_warmup_s = reduce_max([last_warmup_s])[0]
    probe = fixed_steps or max(1, min(MAX_STEPS_PER_WINDOW, math.ceil(CALIBRATION_S / max(slowest_warmup_s, 1e-6))))
    per_step = reduce_max([timed(lambda: trainer.run(probe), trainer.device) / probe])[0]
    if fixed_steps:
        return fixed_steps, per_step
    return max(1, min(MAX_STEPS_PER_WINDOW, math.ceil(window_s / max(per_step, 1e-9)))), per_step


def train_step(
    benchmark: Any,
    trainer: Trainer,
    sampler: Sampler,
    *,
    warmup_steps: int,
    rounds: int,
    window_s: float,
    steps: int | None,
    identity: Identity | None = None,
    world_size: int = 1,
    reduce_max: ReduceMax = _local,
    per_unit: bool = False,
    on_round: OnRound | None = None,
) -> TrainStep:
    """Training-step throughput: windows of many steps, one synchronization at the end of each window.

    In a distributed run every rank calls this with ``reduce_max`` taking the maximum over ranks: a window
    lasts as long as its slowest rank, and img/s counts the ``world_size`` ranks' images together.
    ``per_unit``: pytest-benchmark's statistics per step; ``on_round``: told after warm-up and each window.
    """
    at_start = compile_counters()
    warm_times, loss_first = warm_up(trainer, warmup_steps)
    steps_per_round, steady_s = calibrate(trainer, warm_times[-1], window_s, steps, reduce_max)
    images = world_size * trainer.case.batch_size * steps_per_round
    if on_round is not None:
        on_round(0, rounds, images / max(steps_per_round * steady_s, 1e-9))
    before_rounds = compile_counters()
    _memory_start(trainer.device)
    round_s: list[float] = []

    def window() -> None:
        start = time.perf_counter()
        trainer.run(steps_per_round)
        synchronize(trainer.device)
        round_s.append(time.perf_counter() - start)
        if on_round is not None:
            on_round(len(round_s), rounds, images / round_s[-1])

    telemetry = _timed_rounds(benchmark, window, sampler, rounds, steps_per_round, per_unit)
    round_s = reduce_max(round_s)
    return TrainStep(
        identity=identity or _case_identity(trainer),
        throughput=rate_summary(images, round_s),
        step_ms=round(statistics.median(round_s) / steps_per_round * 1e3, 4),
        window_s_rounds=tuple(round(s, 6) for s in round_s),
        steps_per_round=steps_per_round,
        rounds=len(round_s),
        # eager has nothing to compile: its warm-up excess is first-launch and autotuning cost, not compile time
        compile_s=round(max(0.0, sum(warm_times) - len(warm_times) * steady_s), 4) if trainer.case.compiled else None,
        first_step_s=round(warm_times[0], 4),
        warmup_steps=warmup_steps,
        health=_training_outcome(trainer, telemetry, loss_first, at_start, before_rounds),
    )


def epoch(
    benchmark: Any,
    trainer: Trainer,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    sampler: Sampler,
    *,
    rounds: int,
    non_blocking: bool,
    identity: Identity | None = None,
    per_unit: bool = False,
    on_round: OnRound | None = None,
) -> Epoch:
    """Whole epochs through the real DataLoader: host pipeline, copies and training together.

    One whole untimed epoch comes first: compilation and autotuning happen in its first steps, workers start,
    and it ends normally, so the first timed epoch does not inherit a half-consumed prefetch queue (abandoning
    a persistent-worker iterator makes the next one wait for and discard its in-flight batches).
    ``per_unit``: pytest-benchmark's statistics per batch; ``on_round``: told after each epoch, untimed too.
    """
    epoch_s: list[float] = []
    images: list[int] = []
    batches: list[int] = []
    first_loss: list[float] = []

    def one_epoch() -> None:
        start = time.perf_counter()
        seen = steps = 0
        for x, y in loader:
            trainer.step(*trainer.to_input(x, y, non_blocking=non_blocking))
            if not first_loss:
                first_loss.append(_loss(trainer))  # a sync, but only in the untimed warm-up epoch
            seen += x.shape[0]
            steps += 1
        synchronize(trainer.device)
        epoch_s.append(time.perf_counter() - start)
        images.append(seen)
        batches.append(steps)
        if on_round is not None:
            on_round(len(batches) - 1, rounds, seen / epoch_s[-1])  # batches keeps the untimed epoch's

    at_start = compile_counters()
    one_epoch()
    if not images[0]:
        raise MeasurementError("the epoch yielded no batch: dataset smaller than one batch?")
    del epoch_s[0], images[0]
    before_rounds = compile_counters()
    _memory_start(trainer.device)
    telemetry = _timed_rounds(benchmark, one_epoch, sampler, rounds, batches[0], per_unit)
    return Epoch(
        identity=identity or _case_identity(trainer),
        throughput=rate_summary(images[0], epoch_s),
        epoch_s=round(statistics.median(epoch_s), 6),
        epoch_s_rounds=tuple(round(s, 6) for s in epoch_s),
        images_per_epoch=images[0],
        rounds=len(epoch_s),
        health=_training_outcome(trainer, telemetry, first_loss[0], at_start, before_rounds),
    )


def dataloader(
    benchmark: Any,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    *,
    rounds: int,
    non_blocking: bool,
    identity: Identity | None = None,
    per_unit: bool = False,
    on_round: OnRound | None = None,
) -> Loader:
    """Images per second out of a loader, delivered onto ``device`` (no training); ``per_unit``:
    pytest-benchmark's statistics per image; ``on_round``: told after each drain, untimed too."""

    def drain() -> int:
        seen = 0
        last = None
        for x, y in loader:
            last = (x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking))
            seen += x.shape[0]
        del last
        synchronize(device)
        return seen

    warm_s = time.perf_counter()
    images = drain()  # warm-up: starts persistent workers, fills caches
    warm_s = time.perf_counter() - warm_s
    if images == 0:
        raise MeasurementError("the loader yielded no batch: dataset smaller than one batch?")
    if on_round is not None:
        on_round(0, rounds, images / warm_s)
    round_s: list[float] = []

    def timed_drain() -> None:
        start = time.perf_counter()
        drain()
        round_s.append(time.perf_counter() - start)
        if on_round is not None:
            on_round(len(round_s), rounds, images / round_s[-1])

    unit_rounds(benchmark, timed_drain, rounds=rounds, units=images, per_unit=per_unit)
    return Loader(
        identity=identity or Identity(case_id=""),
        throughput=rate_summary(images, round_s),
        images_per_round=images,
        rounds=len(round_s),
    )
