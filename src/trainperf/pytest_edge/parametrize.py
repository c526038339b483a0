"""The case matrix as pytest parameters: which cases a test that asks for a case fixture runs, with their marks."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from trainperf.measurement.cases import Case
from trainperf.settings import Settings

CASE_FIXTURES = ("trainperf_case", "trainperf_compile_case", "trainperf_loader_case", "trainperf_ddp_case")


def _mps_possible() -> bool:
    if sys.platform != "darwin":
        return False
    from trainperf.machine.environment import mps_available

    return mps_available()


def _case_marks(case: Case) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, case.device), pytest.mark.compile if case.compiled else pytest.mark.eager]


def params(name: str, settings: Settings) -> list[Any]:
    """The parameters of case fixture ``name``; one skipped parameter saying why when the matrix has none."""
    from trainperf.measurement.cases import compile_matrix, loader_matrix

    if name == "trainperf_ddp_case":
        from trainperf.machine.environment import visible_gpus

        distributed = settings.distributed_cases(gpus_per_node=visible_gpus())
        found = [pytest.param(d, id=d.id, marks=[*_case_marks(d.case), pytest.mark.distributed]) for d in distributed]
    elif name == "trainperf_loader_case":
        training = settings.cases(mps_available=_mps_possible())
        loaders = loader_matrix((c.device for c in training), settings.loader_worker_counts().counts)
        found = [
            pytest.param(c, id=c.id, marks=[getattr(pytest.mark, c.device), pytest.mark.dataloader]) for c in loaders
        ]
    else:
        training = settings.cases(mps_available=_mps_possible())
        selected = compile_matrix(training) if name == "trainperf_compile_case" else training
        found = [pytest.param(c, id=c.id, marks=_case_marks(c)) for c in selected]
    return found or [pytest.param(None, marks=pytest.mark.skip(reason=f"the case matrix has no case for {name}"))]


def uses_trainperf(item: pytest.Item) -> bool:
    return any(n in getattr(item, "fixturenames", ()) for n in CASE_FIXTURES)
