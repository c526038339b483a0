"""One training configuration made runnable: model on its device and memory format, Adam, autocast, compile."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainperf.measurement.cases import Case
from trainperf.results import Compilation

if TYPE_CHECKING:
    import torch
    from torch import nn

LEARNING_RATE = 3e-4
# Real batches the step benchmarks keep on the device and cycle through (the same for every rank of a DDP run).
STAGED_BATCHES = 4
Batch = tuple["torch.Tensor", "torch.Tensor"]


def synchronize(device: torch.device) -> None:
    """Wait for queued device work; called once at the end of a timed window, never per step."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def make_optimizer(case: Case, params: Any) -> torch.optim.Optimizer:
    import torch

    impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "forloop": {"foreach": False}}
    return torch.optim.Adam(params, lr=LEARNING_RATE, **impl[case.optimizer])


@dataclass
class Trainer:
    """A model, its optimizer and the step function for one case, cycling over device-resident batches."""

    case: Case
    device: torch.device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    batches: Sequence[Batch] = ()
    last_loss: torch.Tensor | None = None
    _next: int = field(default=0, repr=False)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.last_loss = self.step_fn(x, y)
        return self.last_loss

    def run(self, steps: int) -> None:
        """``steps`` training steps over the staged batches; no synchronization."""
        batches, n = self.batches, len(self.batches)
        i = self._next
        for _ in range(steps):
            x, y = batches[i % n]
            self.step(x, y)
            i += 1
        self._next = i % n

    def sync(self) -> None:
        synchronize(self.device)

    def to_input(self, x: torch.Tensor, y: torch.Tensor, *, non_blocking: bool = False) -> Batch:
        """A host batch moved to the device in the case's memory format."""
        import torch

        x = x.to(self.device, non_blocking=non_blocking)
        if self.case.memory_format == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=non_blocking)


OptimizerFactory = Callable[[Any], "torch.optim.Optimizer"]


def build_trainer(
    case: Case,
    model: nn.Module,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    optimizer: OptimizerFactory | None = None,
) -> Trainer:
    """Move ``model`` to the case's device and format, wrap it in torch.compile if asked, and build the step.

    ``wrap`` (DistributedDataParallel, for instance) is applied on the device, around the compiled module.
    ``Trainer.model`` is the plain module either way.
    ``optimizer`` builds the optimizer from the parameters on the device; by default the case's Adam.
    """
    import torch
    import torch.nn.functional as F

    device = torch.device(case.device)
    model = model.to(device)
    if case.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optim = optimizer(model.parameters()) if optimizer is not None else make_optimizer(case, model.parameters())
    forward: Callable[..., torch.Tensor] = model
    if case.compiled:
        # A fresh dynamo cache per case: otherwise each new module instance adds guards until the
        # recompile limit silently drops later cases to eager.
        torch.compiler.reset()  # public since torch 2.1; clears Dynamo caches
        forward = torch.compile(model, mode=None if case.compile == "default" else case.compile)
    if wrap is not None:
        # Compiled first, then wrapped: Dynamo graph-breaks in DDP's own forward and, on some releases, then
        # compiles nothing of torch.compile(DDP(model)) (pytorch#140416). DDP(compiled) is still split at DDP's
        # buckets, because DDPOptimizer looks for the DDP module active around the compiled call.
        forward = wrap(forward)

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(case.precision)
    scaler = torch.amp.GradScaler("cuda") if case.precision == "fp16" else None
    mark_step = _cudagraph_step_marker() if case.cudagraphs else None

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if mark_step is not None:
            # CUDA-graph trees reuse output memory across replays; marking the step start tells them the
            # previous iteration's outputs are dead.
            mark_step()
        with autocast():
            loss = F.cross_entropy(forward(x), y)
        optim.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optim)
            scaler.update()
        else:
            loss.backward()
            optim.step()
        return loss.detach()

    return Trainer(case=case, device=device, model=model, optimizer=optim, step_fn=step)


def _cudagraph_step_marker() -> Callable[[], None]:
    import torch

    compiler = getattr(torch, "compiler", None)
    marker = getattr(compiler, "cudagraph_mark_step_begin", None)
    if marker is None:  # older releases kept it under torch._inductor
        from torch._inductor import cudagraph_trees

        marker = cudagraph_trees.mark_step_begin
    return marker


def stage_batches(trainer: Trainer, loader: Any, count: int) -> list[Batch]:
    """Take ``count`` batches from the real input pipeline and keep them on the device, so the step benchmark
    measures training, not loading (the epoch and DataLoader benchmarks measure the pipeline)."""
    staged: list[Batch] = []
    for x, y in loader:
        staged.append(trainer.to_input(x, y))
        if len(staged) == count:
            break
    if not staged:
        raise ValueError("the data loader yielded no batch: dataset smaller than one batch?")
    trainer.batches = staged
    return staged


def compile_counters() -> Compilation:
    """Dynamo's and Inductor's process-wide running totals of compiled graphs, graph breaks and CUDA-graph skips
    (unknown where unavailable).

    The one private torch API trainperf reads: ``torch._dynamo.utils.counters`` is where torch keeps these
    totals, and no public API reports them (``torch._dynamo.explain`` compiles again, which would add the very
    graphs it counts). Any failure to read them gives unknown counts, and a compiled case then skips its
    recompilation check rather than failing."""
    try:
        from torch._dynamo.utils import counters
    except Exception:
        return Compilation()
    return Compilation(
        graphs=int(counters["stats"].get("unique_graphs", 0)),
        graph_breaks=int(sum(counters["graph_break"].values())),
        # Inductor skips CUDA graphs (mutated inputs, CPU tensors, dynamic shapes...) with only a log line.
        cudagraph_skips=int(counters["inductor"].get("cudagraph_skips", 0)),
    )
