"""Skipped cases say why without -rs: one trainperf summary line per reason, with its count."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch


@pytest.mark.skipif(torch.cuda.is_available(), reason="about the CUDA cases skipping for lack of a GPU")
def test_each_skip_reason_is_one_summary_line_at_default_verbosity(perf_suite):
    perf_suite.pytester.makepyfile(
        test_other="""
        import pytest

        @pytest.mark.train_step
        @pytest.mark.cuda
        def test_not_ours():
            pytest.skip("not a trainperf case")
        """
    )
    result = perf_suite.run("-m", "train_step and cuda", "test_training.py", "test_other.py")
    out = result.stdout.str()
    skipped = result.parseoutcomes()["skipped"]
    assert skipped >= 2, out  # the CUDA train-step cases, and the other test
    lines = [line for line in out.splitlines() if line.startswith("trainperf: ") and " skipped: " in line]
    # Only the trainperf cases, all skipped for one reason: one line that counts them.
    assert len(lines) == 1, out
    assert re.fullmatch(rf"trainperf: {skipped - 1} cases? skipped: CUDA is not available\b.*", lines[0]), lines[0]
    assert "not a trainperf case" not in out  # pytest's own -rs list is not on


def test_reasons_are_counted_per_reason_most_frequent_first():
    from trainperf.pytest_edge.skips import skip_lines

    def report(nodeid, why):
        return SimpleNamespace(nodeid=nodeid, longrepr=("perf/test_x.py", 8, f"Skipped: {why}"))

    reports = [
        report("a[cpu]", "the case matrix has no case for trainperf_ddp_case"),
        report("b[cuda-1]", "CUDA is not available"),
        report("b[cuda-2]", "CUDA is not available"),
        report("other", "CUDA is not available"),  # not a trainperf case
        SimpleNamespace(nodeid="b[cuda-3]", longrepr=None),  # nothing said
    ]
    assert skip_lines(reports, {"a[cpu]", "b[cuda-1]", "b[cuda-2]", "b[cuda-3]"}) == [
        "trainperf: 2 cases skipped: CUDA is not available",
        "trainperf: 1 case skipped: the case matrix has no case for trainperf_ddp_case",
    ]
