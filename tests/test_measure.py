"""The measurement layer with a tiny model and a stand-in for pytest-benchmark's fixture."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from trainperf.measurement import measure, training
from trainperf.measurement.cases import Case
from trainperf.measurement.training import build_trainer, compile_counters
from trainperf.telemetry import Sampler


class FakeBenchmark:
    """Calls the target like pytest-benchmark 5's pedantic: ``rounds`` rounds of ``iterations`` calls, setup
    before each (refused with more than one iteration), one more call after looped rounds for its result."""

    def __init__(self, before_round=None, after_round=None) -> None:
        self.calls = 0  # rounds
        self.iterations = None
        self.before_round, self.after_round = before_round, after_round

    def pedantic(self, target, setup=None, rounds=1, iterations=1, warmup_rounds=0):
        assert warmup_rounds == 0
        if iterations > 1 and setup is not None:
            raise ValueError("Can't use more than 1 `iterations` with a `setup` function.")
        self.iterations = iterations
        for _ in range(rounds):
            if self.before_round is not None:
                self.before_round()
            if setup is not None:
                setup()
            for _ in range(iterations):
                target()
            self.calls += 1
            if self.after_round is not None:
                self.after_round()
        if iterations > 1:
            target()


def _trainer(model: nn.Module, compile_mode: str = "eager", batches: int = 2):
    case = Case("cpu", compile_mode, "fp32", "contiguous", "tiny", 16, "foreach")
    trainer = build_trainer(case, model)
    g = torch.Generator().manual_seed(0)
    trainer.batches = [
        (torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(batches)
    ]
    return trainer


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


def test_spread_and_rate_summary():
    assert measure.spread([1.0]) == 0.0
    assert measure.spread([1.0, 1.0, 1.0]) == 0.0
    assert measure.spread([90.0, 100.0, 110.0]) == pytest.approx(0.1)  # (105 - 95) / 100
    summary = measure.rate_summary(100, [1.0, 0.5, 2.0])
    assert summary.img_per_s_rounds == (100.0, 200.0, 50.0)
    assert summary.img_per_s == 100.0
    assert summary.noisy is True
    assert measure.rate_summary(100, [1.0, 1.01, 0.99]).noisy is False


def test_train_step_times_windows_and_reports_training_progress():
    bench = FakeBenchmark()
    trainer = _trainer(_tiny())
    result = measure.train_step(
        bench, trainer, Sampler(gpu=None, period_s=0.05), warmup_steps=2, rounds=4, window_s=1.0, steps=5
    )
    assert bench.calls == 4
    assert result.steps_per_round == 5 and result.rounds == 4
    assert len(result.throughput.img_per_s_rounds) == 4
    assert result.health.loss_last < result.health.loss_first
    assert result.step_ms > 0 and result.first_step_s > 0
    assert result.health.compilation.recompiles_in_rounds == 0


@pytest.mark.parametrize("per_unit", [False, True])
def test_each_timed_window_synchronizes_the_device_once(monkeypatch, per_unit):
    # Per-step synchronization would cost ~13% on a launch-bound GPU: a window may wait for the device only at
    # its end, whatever the number of steps in it (and however many calls pytest-benchmark makes of it).
    syncs = []
    for module in (measure, training):
        monkeypatch.setattr(module, "synchronize", lambda device: syncs.append(device))
    per_round = []
    bench = FakeBenchmark(
        before_round=lambda: per_round.append(-len(syncs)), after_round=lambda: per_round.append(len(syncs))
    )
    measure.train_step(
        bench, _trainer(_tiny()), Sampler(gpu=None), warmup_steps=2, rounds=3, window_s=1.0, steps=7, per_unit=per_unit
    )
    assert [start + end for start, end in zip(per_round[::2], per_round[1::2], strict=True)] == [1, 1, 1]
    assert bench.iterations == (7 if per_unit else 1)


def test_per_unit_statistics_give_pytest_benchmark_one_iteration_per_step():
    bench, told = FakeBenchmark(), []
    result = measure.train_step(
        bench,
        _trainer(_tiny()),
        Sampler(gpu=None, period_s=0.05),
        warmup_steps=2,
        rounds=4,
        window_s=1.0,
        steps=5,
        per_unit=True,
        on_round=lambda done, total, rate: told.append((done, total, rate)),
    )
    # pytest-benchmark divides each round by 5 calls; the rounds are still 4 whole windows of 5 steps, each
    # with its telemetry mark, and the call after the looped rounds runs nothing
    assert bench.iterations == 5 and bench.calls == 4
    assert result.rounds == 4 and len(result.window_s_rounds) == 4 and result.steps_per_round == 5
    assert len(result.health.telemetry.throttled_rounds) == 4
    assert [(done, total) for done, total, _ in told] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert [rate for _, _, rate in told[1:]] == pytest.approx([16 * 5 / s for s in result.window_s_rounds], rel=1e-3)


def test_unit_rounds_run_each_round_once_whatever_the_calls():
    calls = []
    bench = FakeBenchmark()
    measure.unit_rounds(bench, lambda: calls.append("round"), rounds=3, units=4, setup=lambda: calls.append("mark"))
    assert calls == ["mark", "round"] * 3 and bench.iterations == 4
    # a stand-in that times rounds itself and calls the target once a round (the distributed worker's)
    calls.clear()
    measure.unit_rounds(bench, lambda: calls.append("round"), rounds=2, units=4, per_unit=False)
    assert calls == ["round"] * 2 and bench.iterations == 1


def test_epoch_statistics_are_per_batch():
    data = torch.utils.data.TensorDataset(torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=16, drop_last=True)
    bench, told = FakeBenchmark(), []
    result = measure.epoch(
        bench,
        _trainer(_tiny()),
        loader,
        Sampler(gpu=None),
        rounds=3,
        non_blocking=False,
        per_unit=True,
        on_round=lambda done, total, rate: told.append((done, total)),
    )
    assert bench.iterations == 4 and result.rounds == 3 and result.images_per_epoch == 64
    assert told == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_calibration_fills_the_window():
    trainer = _trainer(_tiny())
    times, _ = measure.warm_up(trainer, 2)
    steps, per_step = measure.calibrate(trainer, times[-1], window_s=0.2, fixed_steps=None)
    assert per_step > 0
    # the window holds roughly window_s of steps (a loose bound: this machine may be busy)
    assert 0.2 / per_step <= steps <= 0.2 / per_step + 1
    assert measure.calibrate(trainer, times[-1], window_s=0.2, fixed_steps=7)[0] == 7


def test_a_model_that_does_not_learn_is_rejected():
    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.zeros(x.shape[0], 10) + 0.0 * self.w

    with pytest.raises(measure.MeasurementError, match="loss did not go down"):
        measure.train_step(
            FakeBenchmark(),
            _trainer(Constant()),
            Sampler(gpu=None),
            warmup_steps=1,
            rounds=2,
            window_s=1.0,
            steps=2,
        )


def test_diverged_loss_is_rejected():
    with pytest.raises(measure.MeasurementError, match="diverged"):
        measure.check_training(2.3, float("nan"))


def test_recompilation_inside_timed_rounds_fails_the_case():
    """A model whose forward depends on a Python counter recompiles on every call: caught, not timed."""

    class Drifting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3 * 32 * 32, 10)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.linear(x.flatten(1)) * (1.0 + self.calls * 1e-6)

    torch._dynamo.reset()
    trainer = _trainer(Drifting())
    # dynamo's eager backend: the same guards and recompiles as inductor, without a C++ toolchain or its wait
    compiled = torch.compile(trainer.model, backend="eager")
    optimizer = torch.optim.Adam(trainer.model.parameters(), lr=3e-4)

    def step(x, y):
        loss = nn.functional.cross_entropy(compiled(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    trainer.step_fn = step
    # Without automatic dynamic shapes the counter stays a constant in every torch release: torch 2.4 made it a
    # symbolic int after the second call and stopped recompiling.
    with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
        before = compile_counters()
        trainer.run(3)
        assert compile_counters().since(before).graphs == 3
        with pytest.raises(measure.MeasurementError, match="during timed rounds"):
            measure.train_step(
                FakeBenchmark(), trainer, Sampler(gpu=None), warmup_steps=1, rounds=2, window_s=1.0, steps=2
            )
    torch._dynamo.reset()


class Breaking(nn.Module):
    """A linear model whose forward has a graph break in the middle."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        x = x.flatten(1)
        torch._dynamo.graph_break()
        return self.linear(x)


def _compiled_step(trainer) -> None:
    """Swap in a step through dynamo's eager backend (Dynamo's graphs and breaks, no C++ toolchain)."""
    compiled = torch.compile(trainer.model, backend="eager")

    def step(x, y):
        loss = nn.functional.cross_entropy(compiled(x), y)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
        return loss.detach()

    trainer.step_fn = step


def _quick_step_benchmark(trainer):
    return measure.train_step(
        FakeBenchmark(), trainer, Sampler(gpu=None), warmup_steps=2, rounds=2, window_s=1.0, steps=3
    )


def test_graph_breaks_are_this_cases_own_not_the_sessions_running_total():
    torch._dynamo.reset()
    breaking = _trainer(Breaking())
    _compiled_step(breaking)
    assert _quick_step_benchmark(breaking).health.compilation.graph_breaks >= 1
    # Dynamo's counters survive reset(): a later case must not inherit the earlier case's breaks
    torch._dynamo.reset()
    assert compile_counters().graph_breaks >= 1
    assert _quick_step_benchmark(_trainer(_tiny())).health.compilation.graph_breaks == 0
    torch._dynamo.reset()


def test_a_compiled_case_that_compiled_nothing_is_rejected():
    # A compile-mode case whose step never went through Dynamo (disabled, or its recompile limit hit) would
    # report eager numbers under a compile label.
    trainer = _trainer(_tiny())
    trainer.case = dataclasses.replace(trainer.case, compile="default")
    with pytest.raises(measure.MeasurementError, match="compiled no graph"):
        _quick_step_benchmark(trainer)


def test_a_cuda_graph_mode_that_inductor_ran_without_cuda_graphs_fails():
    from torch._dynamo.utils import counters

    trainer = _trainer(_tiny())
    _compiled_step(trainer)
    compiled_step = trainer.step_fn

    def skipping_step(x, y):
        # What Inductor does when it cannot graph the compiled code (it logs "skipping cudagraphs due to ...").
        if not skipping_step.skipped:
            counters["inductor"]["cudagraph_skips"] += 1
            skipping_step.skipped = True
        return compiled_step(x, y)

    skipping_step.skipped = False
    trainer.step_fn = skipping_step
    # The case as a CUDA-graph case; the trainer itself stays on the CPU.
    trainer.case = dataclasses.replace(trainer.case, device="cuda", compile="reduce-overhead")
    torch._dynamo.reset()
    with pytest.raises(measure.MeasurementError, match=r"skipped CUDA graphs 1 time\(s\).*TORCH_LOGS=cudagraphs"):
        _quick_step_benchmark(trainer)
    # Modes without CUDA graphs have nothing to skip: no count, not a count of 0.
    assert _quick_step_benchmark(_trainer(_tiny())).health.compilation.cudagraph_skips is None
    torch._dynamo.reset()


def test_dataloader_counts_images_per_round():
    data = torch.utils.data.TensorDataset(torch.zeros(40, 3, 32, 32), torch.zeros(40, dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=8, drop_last=True)
    bench = FakeBenchmark()
    result = measure.dataloader(bench, loader, torch.device("cpu"), rounds=3, non_blocking=False)
    assert bench.calls == 3
    assert result.images_per_round == 40 and len(result.throughput.img_per_s_rounds) == 3
    per_image = FakeBenchmark()
    result = measure.dataloader(per_image, loader, torch.device("cpu"), rounds=3, non_blocking=False, per_unit=True)
    assert per_image.iterations == 40 and result.rounds == 3 and len(result.throughput.img_per_s_rounds) == 3


def test_empty_loader_is_an_error():
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(3, 1)), batch_size=8, drop_last=True
    )
    with pytest.raises(measure.MeasurementError, match="no batch"):
        measure.dataloader(FakeBenchmark(), loader, torch.device("cpu"), rounds=1, non_blocking=False)
