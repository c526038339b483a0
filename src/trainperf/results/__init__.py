"""What a trainperf benchmark result is, and the only place its stored layout is spelled.

``records`` defines one frozen record per kind (train step, epoch, DataLoader, compile time, data-parallel
train step) and their flat ``extra_info`` layout; ``configs`` what a result's ``config`` holds, a run's scaling
efficiency, and ``K`` (every stored key, for table columns). Writers build records and store
``to_extra_info()``; every reader goes through ``from_extra_info()``.
"""

from trainperf.results.configs import (
    K,
    ddp_config,
    epoch_config,
    loader_config,
    scaling_efficiency,
    trainer_config,
    with_scaling,
)
from trainperf.results.records import (
    KINDS,
    RESULT_VERSION,
    Compilation,
    CompileTime,
    DdpStep,
    Distributed,
    Epoch,
    Health,
    Identity,
    Loader,
    Other,
    Rates,
    Result,
    ResultError,
    TrainStep,
    Utilisation,
    from_extra_info,
    is_result,
)

__all__ = [
    "KINDS",
    "RESULT_VERSION",
    "Compilation",
    "CompileTime",
    "DdpStep",
    "Distributed",
    "Epoch",
    "Health",
    "Identity",
    "K",
    "Loader",
    "Other",
    "Rates",
    "Result",
    "ResultError",
    "TrainStep",
    "Utilisation",
    "ddp_config",
    "epoch_config",
    "from_extra_info",
    "is_result",
    "loader_config",
    "scaling_efficiency",
    "trainer_config",
    "with_scaling",
]
