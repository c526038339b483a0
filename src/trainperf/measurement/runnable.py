"""Whether this machine runs a case or skips it, and why: the one place the suite decides a skip.

The pytest edge acts on the reason (skip, or fail a missing GPU under ``--trainperf-require-cuda``); the data
check asks it before any test runs, since a case that skips needs no data. Distributed cases add their own
conditions in ``trainperf.distributed.case``.
"""

from __future__ import annotations

from trainperf.measurement.cases import Case


def skip_reason(device: str, case: Case | None = None) -> str | None:
    """Why this machine skips a case on ``device`` (None: it runs it)."""
    from trainperf.machine.environment import compile_unsupported_reason, device_unavailable_reason

    if case is not None and (reason := case.unsupported_reason()):
        return f"unsupported combination: {reason}"
    if reason := device_unavailable_reason(device):
        return reason
    if case is not None and case.compiled and (reason := compile_unsupported_reason(device)):
        return reason
    return None
