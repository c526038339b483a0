"""Why trainperf cases were skipped, one line per reason in trainperf's summary.

pytest's default output says only "21 skipped"; the reasons need ``-rs``, which nobody passes to a CI job. A run
on a machine without a GPU skips every CUDA case for one reason, so one line per reason is short at any
verbosity, and a GPU job that skipped what it was meant to measure says why in its log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any


def reason(report: Any) -> str | None:
    """The reason a skipped test report gives, as ``pytest.skip`` or a skip marker stated it."""
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return None


def skip_lines(reports: Iterable[Any], nodeids: Collection[str]) -> list[str]:
    """One line per distinct reason among the skipped ``reports`` of the trainperf cases ``nodeids``, the most
    frequent first."""
    counts = Counter(
        found for report in reports if getattr(report, "nodeid", None) in nodeids and (found := reason(report))
    )
    return [f"trainperf: {count} case{'s' if count != 1 else ''} skipped: {why}" for why, count in counts.most_common()]
