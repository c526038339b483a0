"""Model factories for the distributed tests; the faulty ones misbehave on global rank 1 only."""

from __future__ import annotations

import os
import time

from torch import nn


def tiny(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 16), nn.ReLU(), nn.Linear(16, num_classes))


def crash_on_rank1(num_classes: int = 10) -> nn.Module:
    if os.environ.get("RANK") == "1":
        raise RuntimeError("rank 1 crashed on purpose")
    return tiny(num_classes)


def hang_on_rank1(num_classes: int = 10) -> nn.Module:
    if os.environ.get("RANK") == "1":
        time.sleep(3600)
    return tiny(num_classes)
