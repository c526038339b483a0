"""A data-parallel case from the decision to skip it to its result record.

``skip_reason`` says whether this machine launches the case; ``run`` launches torchrun with the settings every
rank needs (CPU ranks get the threads of the largest world size of the same case that fits here, so every world
size of a case runs with the same threads per rank); ``record`` turns what global rank 0 wrote into the case's
``DdpStep``: the case id and config of this world size, its group (for the scaling table) and the launch time.
The pytest edge only turns a reason into a skip and the ranks' windows into pytest-benchmark rounds.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING

from trainperf.distributed.launch import Launch, LaunchConfig
from trainperf.measurement.cases import DistributedCase
from trainperf.measurement.runnable import skip_reason as case_skip_reason
from trainperf.results import DdpStep, ddp_config, from_extra_info

if TYPE_CHECKING:
    from trainperf.settings import Settings


def skip_reason(dcase: DistributedCase) -> str | None:
    """Why this machine skips a distributed case (None: it launches it)."""
    import torch

    from trainperf.distributed import launch
    from trainperf.machine.environment import visible_gpus

    if reason := dcase.unsupported_reason():
        return f"unsupported combination: {reason}"
    if reason := case_skip_reason(dcase.case.device, dcase.case):
        return reason
    if not torch.distributed.is_available():
        return "this torch build has no torch.distributed"
    if dcase.case.device == "cuda" and not torch.distributed.is_nccl_available():
        return "this torch build has no NCCL backend"
    return launch.capacity_reason(dcase, gpus_per_node=visible_gpus(), cpus=launch.usable_cpus())


def launch_config(settings: Settings) -> LaunchConfig:
    """The settings every rank needs; each has the same name on Settings, except the launch timeout."""
    shared = {f.name: getattr(settings, f.name) for f in fields(LaunchConfig) if f.name != "timeout_s"}
    return LaunchConfig(**shared, timeout_s=settings.dist_timeout_s)


def max_per_node(dcase: DistributedCase, settings: Settings) -> int | None:
    """The largest ranks per node among this case's world sizes that fit this machine's CPUs."""
    from trainperf.distributed.launch import usable_cpus
    from trainperf.machine.environment import visible_gpus

    cpus = usable_cpus()
    return max(
        (
            d.nproc_per_node
            for d in settings.distributed_cases(gpus_per_node=visible_gpus())
            if d.case == dcase.case and d.nnodes == dcase.nnodes and d.nproc_per_node <= cpus
        ),
        default=None,
    )


def run(dcase: DistributedCase, settings: Settings) -> Launch:
    """Launch every rank of ``dcase`` and wait for them (``DistributedError`` when a rank fails or hangs)."""
    from trainperf.distributed.launch import launch

    return launch(dcase, launch_config(settings), max_per_node=max_per_node(dcase, settings))


def record(dcase: DistributedCase, launched: Launch) -> DdpStep | None:
    """The case's result record from what global rank 0 wrote (None: rank 0 ran on another node, whose run
    records the case)."""
    if launched.result is None:
        return None
    ranks = from_extra_info(launched.result)
    if not isinstance(ranks, DdpStep):
        raise TypeError(f"rank 0 of {dcase.id} wrote a {type(ranks).__name__}, expected a DDP result")
    case = dcase.case
    group = case.id + (f"-nodes{dcase.nnodes}" if dcase.nnodes > 1 else "")
    identity = replace(
        ranks.identity, case_id=dcase.id, config=ddp_config(case.as_dict(), dcase.world_size, dcase.nnodes)
    )
    placed = replace(ranks.distributed, distributed_group=group, launch_s=round(launched.wall_s, 3))
    return replace(ranks, identity=identity, distributed=placed)
