"""Recording a baseline that carries its between-run noise: how many independent runs, when to stop, when to
refuse, and the entries written. Policy on plain values; the file itself goes through ``baseline``.

Recording adapts instead of refusing: after ``min_runs`` fresh-process runs it stops as soon as every
benchmark's threshold for a later single run is down to its tolerance (the estimate is tight enough), else it
keeps measuring until ``max_runs`` or the time budget, and records with the noise it measured. It refuses only
what is broken: failed cases, a benchmark missing from a run, fewer than ``min_runs`` runs within the budget.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainperf.gate import baseline as bl
from trainperf.gate.verdict import DEFAULT_ALPHA, DEFAULT_RUN_NOISE, as_drop, bounds, run_noise

MORE, DONE, REFUSE = "more", "done", "refuse"


@dataclass(frozen=True)
class RunOf:
    """One benchmark in one run: its median img/s and rounds."""

    img_per_s: float
    samples: tuple[float, ...]


@dataclass(frozen=True)
class Plan:
    min_runs: int = 3
    max_runs: int = 6
    budget_s: float = 1200.0
    alpha: float = DEFAULT_ALPHA
    prior: float = DEFAULT_RUN_NOISE


@dataclass(frozen=True)
class Step:
    action: str  # MORE, DONE or REFUSE
    reason: str


def loose(runs: Sequence[Mapping[str, RunOf]], tolerances: Mapping[str, float], plan: Plan) -> list[str]:
    """Benchmarks whose threshold for a later single run is still above their tolerance, with that threshold."""
    out = []
    for name, tolerance in sorted(tolerances.items()):
        medians = [run[name].img_per_s for run in runs if name in run]
        noise = run_noise(medians, runs[-1][name].samples, prior=plan.prior)
        threshold, _, _ = bounds(noise, tolerance=tolerance, alpha=plan.alpha)
        if threshold > -math.log1p(-tolerance) + 1e-9:
            out.append(f"{name} {as_drop(threshold):.1%}")
    return out


def next_step(
    runs: Sequence[Mapping[str, RunOf]],
    tolerances: Mapping[str, float],
    *,
    elapsed_s: float,
    per_run_s: float,
    plan: Plan,
    busy_runs: int = 0,
) -> Step:
    """What to do after ``runs``: measure once more, write, or refuse (with the reason). ``busy_runs`` were
    measured while other work took the machine and are not among ``runs``: a baseline recorded slow would hide
    later regressions."""
    fits = elapsed_s + per_run_s <= plan.budget_s
    dropped = f" ({busy_runs} run(s) left out: the machine was busy)" if busy_runs else ""
    if not runs and busy_runs and fits:
        return Step(MORE, f"0 of at least {plan.min_runs} runs{dropped}")
    if not runs or not runs[0]:
        return Step(REFUSE, f"no throughput benchmark ran{dropped}")
    expected = set(runs[0])
    for index, run in enumerate(runs[1:], start=2):
        if missing := sorted(expected - set(run)):
            return Step(REFUSE, f"run {index} (a fresh process) has no result for {', '.join(missing[:3])}")
    if len(runs) < plan.min_runs:
        if fits:
            return Step(MORE, f"{len(runs)} of at least {plan.min_runs} runs{dropped}")
        return Step(
            REFUSE,
            f"never settled: only {len(runs)} of {plan.min_runs} runs fit in the {plan.budget_s:.0f} s budget "
            f"(a run takes about {per_run_s:.0f} s; raise --trainperf-record-budget-s){dropped}",
        )
    wide = loose(runs, tolerances, plan)
    if not wide:
        return Step(DONE, f"{len(runs)} runs: every threshold is down to its tolerance")
    if len(runs) >= plan.max_runs:
        return Step(
            DONE,
            f"{len(runs)} runs (the most): noise recorded as measured; wider than the tolerance: {', '.join(wide[:4])}",
        )
    if not fits:
        return Step(
            DONE,
            f"{len(runs)} runs (the time budget): noise recorded as measured; wider than the "
            f"tolerance: {', '.join(wide[:4])}",
        )
    return Step(MORE, f"{len(runs)} runs: still wider than the tolerance: {', '.join(wide[:4])}")


def entries(runs: Sequence[Mapping[str, RunOf]], provenance: Mapping[str, dict[str, Any]]) -> dict[str, bl.Entry]:
    """One entry per benchmark from all runs (each run's median; the newest run's rounds)."""
    return {
        name: bl.entry_from_runs(
            [(run[name].img_per_s, run[name].samples) for run in runs],
            {**provenance.get(name, {}), "runs_recorded": len(runs)},
        )
        for name in runs[0]
    }


def write(
    path: Any,
    old: bl.Baseline | None,
    key: str,
    new_entries: dict[str, bl.Entry],
    machine_speed: tuple[float, ...] = (),
) -> tuple[list[str], list[str]]:
    """Merge into the file at ``path`` atomically: (lines to show, errors)."""
    merged, changes = bl.merge(old, key, new_entries, machine_speed=machine_speed)
    try:
        bl.write_atomic(path, merged)
    except (bl.BaselineError, OSError) as exc:
        return [], [f"{path}: baseline not updated: {exc}"]
    lines = changes.lines()
    return [f"wrote {path}: {lines[0]}", *lines[1:]], []


def provenance_base() -> dict[str, Any]:
    """The commit and date every recorded entry carries."""
    return {"commit": _git_commit(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
