"""What the verdict can detect, by simulating the two-level noise of a shared runner. Pure (numpy and verdict).

Each run's log median is ``log(level) + session + process + within``:

- ``within``: the median of ``rounds`` rounds, each with round-to-round noise ``within_cv``;
- ``process``: a fresh process's own shift, ``process_cv``, independent run to run;
- ``session``: a shift shared by every run of one session (minutes to hours of other tenants, clocks, host
  placement), ``session_cv``. The baseline's runs share one, today's runs another; A/B pairs share theirs.

Stored baselines meet both the process and the session terms; a confirmation helps against the first only;
interleaved A/B cancels the session term. That ordering is what the tables show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainperf.gate.verdict import (
    AB_ALPHA,
    DEFAULT_ALPHA,
    DEFAULT_RUN_NOISE,
    DEFAULT_TOLERANCE,
    REGRESSED,
    compare,
    confirm,
    paired,
)


@dataclass(frozen=True)
class Machine:
    process_cv: float
    session_cv: float
    within_cv: float = 0.02
    rounds: int = 10


def _sigma(cv: float) -> float:
    return math.sqrt(math.log1p(cv**2))


def _runs(rng, machine: Machine, level: float, count: int, session: float) -> list[tuple[float, list[float]]]:
    """``count`` runs of one session: (median img/s, rounds)."""
    out = []
    for _ in range(count):
        shift = session + rng.normal(0.0, _sigma(machine.process_cv))
        rounds = level * math.exp(shift) * rng.lognormal(0.0, _sigma(machine.within_cv), machine.rounds)
        out.append((float(sorted(rounds)[len(rounds) // 2]), rounds.tolist()))
    return out


def stored_rates(
    machine: Machine,
    *,
    drop: float,
    reference_runs: int,
    confirmation: bool,
    trials: int = 1000,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    prior: float = DEFAULT_RUN_NOISE,
    seed: int = 0,
) -> float:
    """Share of runs failed (REGRESSED) against a stored baseline of ``reference_runs`` runs from another
    session, when throughput truly fell by ``drop``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    failed = 0
    for _ in range(trials):
        base = _runs(rng, machine, 1000.0, reference_runs, rng.normal(0.0, _sigma(machine.session_cv)))
        today = rng.normal(0.0, _sigma(machine.session_cv))
        (first, samples), (fresh, _) = _runs(rng, machine, 1000.0 * (1 - drop), 2, today)
        reference = [m for m, _ in base]
        row = compare("sim", reference, [first], tolerance=tolerance, alpha=alpha, prior=prior, samples=samples)
        if row.failed and confirmation:
            row = confirm(row, reference, [first], [fresh], alpha=alpha, prior=prior, samples=samples)
        failed += row.verdict == REGRESSED
    return failed / trials


def ab_rates(
    machine: Machine,
    *,
    drop: float,
    pairs: int,
    trials: int = 1000,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = AB_ALPHA,
    prior: float = DEFAULT_RUN_NOISE,
    seed: int = 0,
) -> float:
    """Share of A/B comparisons of ``pairs`` pairs called REGRESSED when B is truly ``drop`` slower."""
    import numpy as np

    rng = np.random.default_rng(seed)
    failed = 0
    for _ in range(trials):
        session = rng.normal(0.0, _sigma(machine.session_cv))
        a = _runs(rng, machine, 1000.0, pairs, session)
        b = _runs(rng, machine, 1000.0 * (1 - drop), pairs, session)
        row = paired(
            "sim",
            [m for m, _ in a],
            [m for m, _ in b],
            tolerance=tolerance,
            alpha=alpha,
            prior=prior,
            samples=a[0][1],
        )
        failed += row.verdict == REGRESSED
    return failed / trials
