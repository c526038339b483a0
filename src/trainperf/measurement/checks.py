"""The checks that fail a case rather than report a number that cannot be trusted: a loss that diverged or did
not go down, graphs compiled inside timed rounds, a compiled case that compiled nothing, a CUDA-graph case that
Inductor ran without CUDA graphs. Each raises ``MeasurementError``; the pytest layer turns it into a failed case.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trainperf.measurement.training import compile_counters
from trainperf.results import Compilation

if TYPE_CHECKING:
    from trainperf.measurement.cases import Case
    from trainperf.measurement.training import Trainer


class MeasurementError(Exception):
    """The numbers of this case cannot be trusted; the message says why."""


def check_training(loss_first: float, loss_last: float) -> None:
    """A loss that is not finite, or did not go down, means the benchmark is not training."""
    if not math.isfinite(loss_last):
        raise MeasurementError(f"loss became {loss_last} during the benchmark: the run diverged")
    if not loss_last < loss_first:
        raise MeasurementError(
            f"loss did not go down ({loss_first:.4f} -> {loss_last:.4f}): the benchmark is not training"
        )


def require_graphs(case: Case, graphs: int) -> None:
    """A compiled case that compiled no graph ran eagerly: its numbers would be eager ones under a compile label."""
    if case.compiled and graphs == 0:
        raise MeasurementError(
            "torch.compile compiled no graph for this case: the model ran eagerly (Dynamo disabled, its recompile "
            "limit hit, or a graph break around all of it), so these would be eager numbers under a compile label"
        )


def require_cudagraphs(skips: int | None) -> None:
    """A CUDA-graph case that Inductor ran without CUDA graphs would pass as a ~3x regression or, worse, become a
    baseline without them: it fails, naming where Inductor says why (it only logs the reason)."""
    if skips:
        raise MeasurementError(
            f"Inductor skipped CUDA graphs {skips} time(s) in this CUDA-graph case (dynamic shapes, CPU tensors or "
            "mutated inputs in the compiled code), so these would be numbers without CUDA graphs; rerun with "
            "TORCH_LOGS=cudagraphs (perf_hints before torch 2.6) for Inductor's reason"
        )


def compile_outcome(trainer: Trainer, at_start: Compilation, before_rounds: Compilation) -> Compilation:
    """This case's graphs, graph breaks, recompilations and (CUDA-graph modes) CUDA-graph skips since its
    measurement started (Dynamo's counters are process-wide running totals, and compiling is lazy: nothing
    compiles before the first step); raises when timed rounds compiled, or when a compiled case compiled nothing."""
    after = compile_counters()
    if after.graphs is None or before_rounds.graphs is None or at_start.graphs is None:  # no Dynamo counters
        return Compilation()
    in_rounds = after.graphs - before_rounds.graphs
    if in_rounds > 0:
        raise MeasurementError(
            f"torch.compile compiled {in_rounds} new graph(s) during timed rounds (recompilation or graph "
            f"breaks on new inputs): the numbers include compilation"
        )
    since = after.since(at_start)
    require_graphs(trainer.case, since.graphs or 0)
    skips = since.cudagraph_skips if trainer.case.cudagraphs else None
    require_cudagraphs(skips)
    return Compilation(
        graphs=since.graphs, graph_breaks=since.graph_breaks, recompiles_in_rounds=in_rounds, cudagraph_skips=skips
    )
