"""The DataLoader benchmark's default worker counts stop at the usable cores; a list the user gives runs as given."""

from __future__ import annotations

import os

import pytest

from trainperf.machine.environment import usable_cores
from trainperf.measurement.cases import DEFAULT_LOADER_WORKERS, loader_workers
from trainperf.settings import Settings


def _cores(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)


def test_usable_cores_is_the_affinity_else_the_core_count(monkeypatch):
    _cores(monkeypatch, 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cores() == 2  # a container or taskset limits the process below the machine's 64
    monkeypatch.delattr(os, "sched_getaffinity")
    assert usable_cores() == 64


@pytest.mark.parametrize(
    ("cores", "counts", "dropped"),
    [(1, (0, 1), (2, 4)), (2, (0, 2), (4,)), (3, (0, 2, 3), (4,)), (4, (0, 2, 4), ()), (64, (0, 2, 4), ())],
)
def test_the_default_is_capped_at_the_cores_and_deduplicated(cores, counts, dropped):
    got = loader_workers(None, cores)
    assert (got.counts, got.dropped) == (counts, dropped)
    assert (got.note() is None) == (not dropped)


def test_the_note_lists_what_was_dropped_and_why():
    assert DEFAULT_LOADER_WORKERS == (0, 2, 4) and Settings().loader_workers is None
    two = Settings().loader_worker_counts(2)
    assert two.reasons() == ["4 workers > 2 usable cores"]
    assert two.note() == (
        "DataLoader workers: 0,2 (the default 0,2,4 capped at the 2 usable cores: 4 workers > 2 usable cores; "
        "--trainperf-loader-workers runs a list as given)"
    )
    assert loader_workers(None, 1).reasons() == ["2 workers > 1 usable core", "4 workers > 1 usable core"]


def test_a_list_the_user_gives_is_not_capped():
    explicit = Settings(loader_workers=(0, 2, 4)).loader_worker_counts(2)
    assert (explicit.counts, explicit.dropped, explicit.note()) == ((0, 2, 4), (), None)
    assert Settings(loader_workers=(8,)).loader_worker_counts(1).counts == (8,)


def _loader_ids(result: pytest.RunResult) -> list[str]:
    return [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "test_dataloader[cpu-" in line]


def test_collection_on_two_cores_drops_four_workers_unless_asked_for(perf_suite, monkeypatch):
    _cores(monkeypatch, 2)
    default = perf_suite.run("--collect-only", "-q", "-m", "dataloader and cpu", tiny=False)
    assert default.ret == 0, default.stdout.str()
    assert _loader_ids(default) == ["cpu-w0-nopin", "cpu-w2-nopin", "cpu-resident"]
    asked = perf_suite.run(
        "--collect-only", "-q", "-m", "dataloader and cpu", "--trainperf-loader-workers=0,2,4", tiny=False
    )
    assert _loader_ids(asked) == ["cpu-w0-nopin", "cpu-w2-nopin", "cpu-w4-nopin", "cpu-resident"]
    _cores(monkeypatch, 16)
    roomy = perf_suite.run("--collect-only", "-q", "-m", "dataloader and cpu", tiny=False)
    assert _loader_ids(roomy) == ["cpu-w0-nopin", "cpu-w2-nopin", "cpu-w4-nopin", "cpu-resident"]
