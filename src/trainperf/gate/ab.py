"""Interleaved A/B: measure the same benchmarks in two environments, alternating fresh processes, and decide
from the paired ratios. The pull-request check for shared runners: whatever drifts over minutes or hours hits
both sides of a pair alike and cancels.

A side is a git revision (checked out into a temporary worktree, its ``src/`` first on ``PYTHONPATH``), a Python
interpreter (another venv, another torch), extra pytest arguments, or any mix. Pairs run in the order
AB, BA, AB, ... so a steady drift inside the session does not favour either side. No pytest import.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

from trainperf import child_process
from trainperf.child_process import ChildError
from trainperf.gate.fresh_run import CHILD_ENV
from trainperf.gate.runs import RunError, SavedRun, load_run
from trainperf.gate.verdict import AB_ALPHA, DEFAULT_RUN_NOISE, DEFAULT_TOLERANCE, Comparison, paired

GIT_TIMEOUT_S = 120.0


class ABError(Exception):
    """A side cannot be set up or measured; the message says which side and why."""


@dataclass(frozen=True)
class Side:
    label: str  # "A" or "B"
    rev: str | None = None
    python: str | None = None
    args: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"rev {self.rev}" if self.rev else "working tree"]
        if self.python:
            parts.append(f"python {self.python}")
        if self.args:
            parts.append("args " + shlex.join(self.args))
        return f"{self.label}: " + ", ".join(parts)


@dataclass
class ABResult:
    rows: list[Comparison]
    key: str
    runs: dict[str, list[SavedRun]] = field(default_factory=dict)  # by side label, in pair order
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if any(row.failed for row in self.rows) else 0


def _git(repo: Path, *args: str) -> str:
    what = f"git {' '.join(args)}"
    try:
        done = child_process.run(["git", *args], what=what, cwd=repo, timeout_s=GIT_TIMEOUT_S, check=False)
    except ChildError as exc:
        raise ABError(f"{what}: {exc.start_error or exc.reason}") from None
    if done.returncode != 0:
        raise ABError(f"{what}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def _remove_worktree(repo: Path, where: Path) -> None:
    # Cleanup: a worktree git cannot remove is left for ``git worktree prune``, not a reason to fail the A/B.
    with suppress(ChildError):
        child_process.run(
            ["git", "worktree", "remove", "--force", str(where)],
            what="git worktree remove",
            cwd=repo,
            timeout_s=GIT_TIMEOUT_S,
            check=False,
        )


def checkout(stack: ExitStack, repo: Path, side: Side, tmp: Path) -> Path:
    """The directory a side runs in: ``repo`` itself, or a detached worktree of its revision (removed after)."""
    if side.rev is None:
        return repo
    commit = _git(repo, "rev-parse", "--verify", f"{side.rev}^{{commit}}")
    where = tmp / f"side-{side.label}"
    _git(repo, "worktree", "add", "--detach", "--quiet", str(where), commit)
    stack.callback(_remove_worktree, repo, where)
    return where


def measure_side(
    side: Side, where: Path, pytest_args: Sequence[str], json_path: Path, timeout_s: float
) -> tuple[SavedRun, float]:
    """One fresh pytest process of one side: its run and its seconds."""
    env = dict(os.environ)
    env[CHILD_ENV] = "1"  # no gate inside a side: the A/B decides
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(where / "src"), env.get("PYTHONPATH", "")) if p)
    cmd = [
        side.python or sys.executable,
        "-m",
        "pytest",
        *pytest_args,
        *side.args,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={json_path}",
    ]
    try:
        done = child_process.run(cmd, what=f"side {side.label}", cwd=where, env=env, timeout_s=timeout_s, check=False)
    except ChildError as exc:
        if exc.start_error is not None:
            raise ABError(f"side {side.label}: cannot start {cmd[0]}: {exc.start_error}") from None
        raise ABError(f"side {side.label}: pytest did not finish within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        tail = "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-6:])
        raise ABError(f"side {side.label}: pytest exited {done.returncode} ({shlex.join(cmd)}):\n  {tail}")
    try:
        run = load_run(json_path)
    except RunError as exc:
        raise ABError(f"side {side.label}: {exc}") from None
    if not run.results:
        raise ABError(f"side {side.label}: no throughput benchmark ran (check the selection: {shlex.join(cmd)})")
    return run, done.seconds


def order(pairs: int) -> list[tuple[int, str]]:
    """(pair index, side) in running order: AB, BA, AB, ..."""
    out = []
    for i in range(pairs):
        out.extend([(i, "A"), (i, "B")] if i % 2 == 0 else [(i, "B"), (i, "A")])
    return out


def decide(
    a_runs: Sequence[SavedRun],
    b_runs: Sequence[SavedRun],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = AB_ALPHA,
    prior: float = DEFAULT_RUN_NOISE,
) -> list[Comparison]:
    """One paired verdict per benchmark both sides measured in every pair."""
    names = set.intersection(*(set(r.results) for r in [*a_runs, *b_runs]))
    return [
        paired(
            name,
            [r.results[name].img_per_s for r in a_runs],
            [r.results[name].img_per_s for r in b_runs],
            tolerance=tolerance,
            alpha=alpha,
            prior=prior,
            samples=a_runs[0].results[name].samples,
            against=f"A/B x{len(a_runs)}",
        )
        for name in sorted(names)
    ]


def run_ab(
    repo: Path,
    sides: tuple[Side, Side],
    pytest_args: Sequence[str],
    *,
    pairs: int,
    tolerance: float,
    alpha: float,
    prior: float = DEFAULT_RUN_NOISE,
    timeout_s: float = 900.0,
    say: Callable[[str], None] = print,
) -> ABResult:
    """Measure ``pairs`` alternating pairs and judge them."""
    start = time.monotonic()
    runs: dict[str, list[SavedRun | None]] = {"A": [None] * pairs, "B": [None] * pairs}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="trainperf-ab-") as tmp_name:
        tmp = Path(tmp_name)
        where = {side.label: checkout(stack, repo, side, tmp) for side in sides}
        by_label = {side.label: side for side in sides}
        for step, (i, label) in enumerate(order(pairs), start=1):
            run, seconds = measure_side(
                by_label[label], where[label], pytest_args, tmp / f"{label}-{i}.json", timeout_s
            )
            medians = ", ".join(f"{r.img_per_s:,.1f}" for r in run.results.values())
            say(f"trainperf ab: {step}/{2 * pairs} pair {i + 1} side {label}: {seconds:.0f} s, img/s {medians}")
            runs[label][i] = run
    a_runs = [r for r in runs["A"] if r is not None]
    b_runs = [r for r in runs["B"] if r is not None]
    keys = {r.key for r in [*a_runs, *b_runs]}
    rows = decide(a_runs, b_runs, tolerance=tolerance, alpha=alpha, prior=prior)
    if not rows:
        raise ABError("A and B measured no throughput benchmark in common in every pair; nothing to decide")
    return ABResult(rows, ", ".join(sorted(keys)), {"A": a_runs, "B": b_runs}, time.monotonic() - start)
