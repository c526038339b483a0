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


class _Stuck(nn.Module):
    """Zero logits on rank 1: its loss stays at ln(10) while rank 0, whose gradients still count, learns."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = tiny(num_classes)

    def forward(self, x):
        out = self.net(x)
        return out * 0.0 if os.environ.get("RANK") == "1" else out


def stuck_on_rank1(num_classes: int = 10) -> nn.Module:
    return _Stuck(num_classes)


class _Slow(nn.Module):
    def __init__(self, num_classes: int, delay_s: float) -> None:
        super().__init__()
        self.net = tiny(num_classes)
        self.delay_s = delay_s

    def forward(self, x):
        if os.environ.get("RANK") == "1":
            time.sleep(self.delay_s)
        return self.net(x)


SLOW_STEP_S = 0.05


def slow_on_rank1(num_classes: int = 10) -> nn.Module:
    return _Slow(num_classes, SLOW_STEP_S)


def wide(num_classes: int = 10) -> nn.Module:
    """About 42 MB of fp32 weights: more than DDP's default 25 MB bucket, so compiled DDP splits its graph."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(3 * 32 * 32, 2048),
        nn.ReLU(),
        nn.Linear(2048, 2048),
        nn.ReLU(),
        nn.Linear(2048, num_classes),
    )
