"""A pytest plugin that slows every training step down from outside trainperf's code: the injected regression
of scripts/verdict_check.sh's A/B check.

    PYTHONPATH=scripts pytest perf/ -p slowdown_plugin            # each step 10% longer
    TRAINPERF_SLOWDOWN=0.2 PYTHONPATH=scripts pytest perf/ -p slowdown_plugin

Each call of ``Trainer.step`` is followed by busy time equal to the given share of its own duration (CPU steps
are synchronous, so their duration is their cost; this is for CPU checks).
"""

from __future__ import annotations

import os
import time

import pytest


@pytest.fixture(autouse=True)
def _trainperf_slowdown(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainperf.measurement import training

    share = float(os.environ.get("TRAINPERF_SLOWDOWN", "0.10"))
    step = training.Trainer.step

    def slower_step(self, x, y):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        loss = step(self, x, y)
        until = time.perf_counter() + share * (time.perf_counter() - start)
        while time.perf_counter() < until:
            pass
        return loss

    monkeypatch.setattr(training.Trainer, "step", slower_step)
