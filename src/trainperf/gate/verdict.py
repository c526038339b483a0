"""Slower or not: the verdict policy. Pure logic on plain numbers: no file I/O, no git, no pytest.

Noise has two levels. Rounds inside one run agree within a few percent, but a whole run (a new process, its
thread placement, caches, clocks, the other tenants of a shared host) shifts by 5-20% against another. So the
unit of evidence is a run: its median img/s. A reference (a baseline, or side A of an A/B) holds the medians of
several independent runs, and their spread is the *between-run noise*, raised by a prior where it is smaller, so
that three runs that happen to agree do not promise more than a machine delivers.

A benchmark's change is the log ratio of the current runs' centre to the reference runs' centre (the mean of
their logs; the median from ROBUST_FROM runs on). Its threshold is the larger of its tolerance and the one-sided
Student-t bound on that difference under no change (``alpha``, between-run noise, reference and current run
counts). Dropping past the threshold is ``REGRESSED``; dropping past the tolerance but
inside the noise is ``INCONCLUSIVE`` (this machine cannot tell, and says so instead of guessing); rising past the
threshold is ``STALE``. The smallest change the machine can detect is the drop caught 80% of the time.

A regression seen once is confirmed by a fresh run (``confirm``): the verdict stands only when that run alone
crosses the threshold too. A/B (``paired``) decides from the per-pair ratios of runs alternated in one session,
so the slow drift that both sides share cancels.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

OK = "ok"
REGRESSED = "REGRESSED"
STALE = "improved — baseline stale"
FASTER = "faster"  # A/B: B beats A beyond the threshold (nothing is stale there)
INCONCLUSIVE = "inconclusive — within this machine's noise"
UNCONFIRMED = "not confirmed — a fresh run agrees with the baseline"
NEW = "new — no baseline"
MISSING = "missing — in baseline but not run"
CONTENDED = "no verdict — machine busy"  # looked regressed, but measured while other work took the machine
SLOWER_MACHINE = "no verdict — machine slower"  # a drop the machine's own slowdown (its speed probe) explains
# How far the speed probe may fall below its recorded speed before the machine counts as slower: well above the
# probe's own run-to-run spread on a quiet machine.
MACHINE_NOISE = 0.10

DEFAULT_TOLERANCE = 0.05
# Per benchmark, before confirmation. After it, a clean benchmark with 6% between-run noise and 5 reference runs
# is failed about 0.4% of the time (simulated, tests/test_verdict.py), and 30% drops are still caught 97-99%.
DEFAULT_ALPHA = 0.02
# No confirmation follows an A/B: each verdict already rests on several pairs of fresh processes, so it keeps the
# conventional 5%.
AB_ALPHA = 0.05
# Between-run noise assumed before any is measured, and its weight in degrees of freedom: a reference of one
# run (an old baseline, a --benchmark-compare run) is judged with 3% run-to-run noise on 2 degrees of freedom;
# each further reference run adds one degree of its own evidence.
DEFAULT_RUN_NOISE = 0.03
PRIOR_DOF = 2.0
POWER = 0.8  # "can detect" means: caught in 80% of runs
_MEDIAN_EFFICIENCY = 1.2533  # sd of a sample median over sd of the mean, normal data


@dataclass(frozen=True)
class Noise:
    """Between-run noise evidence for one benchmark, on the log scale (0.05 is about 5%)."""

    sigma: float  # sd of one run's log median: measured runs pooled with the prior
    dof: float  # degrees of freedom of sigma
    runs: int  # reference runs behind it
    measured: float | None  # sd of the reference runs alone; None with fewer than 2


@dataclass(frozen=True)
class Comparison:
    """The verdict on one benchmark against one reference: the only record of a verdict there is."""

    name: str
    verdict: str
    baseline: float | None = None  # reference img/s: the centre of its runs
    current: float | None = None  # this run's img/s: the centre of its runs
    change: float | None = None  # estimated relative change, -0.10 = 10% slower
    tolerance: float | None = None
    threshold: float | None = None  # drop that fails: max(tolerance, noise bound)
    detectable: float | None = None  # smallest drop caught in 80% of runs
    noise: float | None = None  # between-run noise used (sigma, log scale)
    runs: tuple[int, int] | None = None  # (reference, current) runs; pairs for A/B
    first: float | None = None  # change of the first measurement, when a confirmation ran
    confirmation: float | None = None  # change of the confirming fresh run
    against: str = "baseline"
    busy: float | None = None  # share of the machine's CPU other work took while the deciding run measured
    machine_change: float | None = None  # the speed probe now against its recorded speed, -0.2 = 20% slower

    @property
    def failed(self) -> bool:
        return self.verdict == REGRESSED

    @property
    def underpowered(self) -> bool:
        """Whether this machine's between-run noise, not the tolerance, sets the threshold for this benchmark."""
        if self.threshold is None or self.tolerance is None:
            return False
        return self.threshold > self.tolerance + 1e-9

    def line(self) -> str:
        """One line a person reads in a summary."""
        if self.change is None:
            return f"{self.verdict}: {self.name} (against {self.against})"
        assert self.runs is not None and self.tolerance is not None and self.threshold is not None
        what = "pairs" if self.against.startswith("A/B") else "runs"
        text = (
            f"{self.verdict}: {self.name}: {self.against} {self.baseline:,.1f} img/s, current {self.current:,.1f} "
            f"img/s, change {self.change:+.1%}, threshold -{self.threshold:.1%} (tolerance {self.tolerance:.1%}, "
            f"noise {self.noise:.1%} from {self.runs[0]} {what}), detectable -{self.detectable:.1%}"
        )
        if self.confirmation is not None:
            text += f"; first run {self.first:+.1%}, confirmation in a fresh process {self.confirmation:+.1%}"
        if self.busy is not None:
            text += (
                f"; other work took {self.busy:.1%} of the machine's CPU while it was measured, so the drop may be "
                f"the neighbours' (run it again on a quiet machine, or use trainperf ab)"
            )
        if self.machine_change is not None:
            text += (
                f"; the machine itself ran {-self.machine_change:.1%} slower than when the baseline was recorded "
                f"(speed probe), which explains this drop (run it again later, or use trainperf ab)"
            )
        if self.underpowered:
            text += (
                f"; this machine's noise hides drops between {self.tolerance:.1%} and {self.threshold:.1%} here "
                f"(more reference runs, or A/B, narrow it)"
            )
        return text


def _logs(values: Sequence[float]) -> list[float]:
    return [math.log(v) for v in values]


# From this many runs (or pairs) on, centre and spread are the median and MAD. Not fewer: a MAD of five values
# is so loose that t-bounds on it false-alarm 2-3x more often than the sd's (simulated, scripts/gate_power.py).
ROBUST_FROM = 8


def location_scale(logs: Sequence[float]) -> tuple[float, float | None]:
    """Centre and sd of log values: mean and sd for few values; from ROBUST_FROM on, the median and the scaled
    MAD, so that one run disturbed by another tenant (a 10x slower process has been seen) decides nothing."""
    if len(logs) >= ROBUST_FROM:
        centre = statistics.median(logs)
        return centre, 1.4826 * statistics.median(abs(v - centre) for v in logs)
    return statistics.fmean(logs), statistics.stdev(logs) if len(logs) >= 2 else None


def within_run_sigma(samples: Sequence[float]) -> float:
    """The sd of one run's log median implied by its own rounds: the floor of any between-run noise."""
    if len(samples) < 2:
        return 0.0
    return _MEDIAN_EFFICIENCY * statistics.stdev(_logs(samples)) / math.sqrt(len(samples))


def run_noise(
    runs: Sequence[float],
    samples: Sequence[float] = (),
    *,
    prior: float = DEFAULT_RUN_NOISE,
    prior_dof: float = PRIOR_DOF,
) -> Noise:
    """Between-run noise from reference run medians (img/s).

    The prior can only raise the estimate, never lower it: the larger of the runs' own spread and that spread
    pooled with ``prior`` (on ``prior_dof`` degrees of freedom), on the pooled degrees of freedom. A prior that
    pulled a measured 6% down towards 3% doubled the false alarms (simulated). Never below the noise one run's
    rounds imply (``samples``)."""
    if not runs:
        raise ValueError("a reference needs at least one run")
    within = within_run_sigma(samples)
    _, measured = location_scale(_logs(runs))
    return _pooled(measured, len(runs), max(math.log1p(prior), within), prior_dof, within)


def _pooled(measured: float | None, count: int, prior_sigma: float, prior_dof: float, floor: float) -> Noise:
    """``measured`` (from ``count`` values) raised, never lowered, by pooling with ``prior_sigma``."""
    own_dof = count - 1
    pooled = math.sqrt(((measured or 0.0) ** 2 * own_dof + prior_sigma**2 * prior_dof) / (own_dof + prior_dof))
    return Noise(sigma=max(pooled, measured or 0.0, floor), dof=own_dof + prior_dof, runs=count, measured=measured)


def _t(alpha: float, dof: float) -> float:
    from scipy.stats import t

    return float(t.ppf(1.0 - alpha, dof))


def _z(p: float) -> float:
    return statistics.NormalDist().inv_cdf(p)


def bounds(
    noise: Noise, *, tolerance: float, alpha: float, current_runs: int = 1, paired: bool = False
) -> tuple[float, float, float]:
    """(threshold, detectable, standard error) on the log scale. ``paired``: noise is the sd of one pair's log
    ratio and ``noise.runs`` the pairs, so the error is that of their mean."""
    # A median's variance is pi/2 times a mean's: only for the side that takes one.
    reference = (math.pi / 2 if noise.runs >= ROBUST_FROM else 1.0) / noise.runs
    current = 0.0 if paired else (math.pi / 2 if current_runs >= ROBUST_FROM else 1.0) / current_runs
    se = noise.sigma * math.sqrt(reference + current)
    threshold = max(-math.log1p(-tolerance), _t(alpha, noise.dof) * se)
    return threshold, threshold + _z(POWER) * se, se


def as_drop(log_value: float) -> float:
    """A log-scale drop as a relative one: 0.105 -> 0.10."""
    return -math.expm1(-log_value)


def centre(values: Sequence[float]) -> float:
    """The img/s a set of runs stands for: their geometric mean, or their median from ROBUST_FROM runs on."""
    return math.exp(location_scale(_logs(values))[0])


def compare(
    name: str,
    reference: Sequence[float],
    current: Sequence[float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    prior: float = DEFAULT_RUN_NOISE,
    samples: Sequence[float] = (),
    against: str = "baseline",
) -> Comparison:
    """Verdict for one benchmark: ``reference`` and ``current`` are run medians (img/s), ``samples`` the rounds
    of one run (the floor of the noise)."""
    if not reference or not current:
        raise ValueError(f"{name}: both the reference and the current run need at least one value")
    noise = run_noise(reference, samples, prior=prior)
    threshold, detectable, _ = bounds(noise, tolerance=tolerance, alpha=alpha, current_runs=len(current))
    change_log = location_scale(_logs(current))[0] - location_scale(_logs(reference))[0]
    verdict = _verdict(change_log, threshold, tolerance, improved=STALE)
    return _row(name, verdict, reference, current, change_log, tolerance, (threshold, detectable), noise, against)


def _row(
    name: str,
    verdict: str,
    reference: Sequence[float],
    current: Sequence[float],
    change_log: float,
    tolerance: float,
    bound: tuple[float, float],
    noise: Noise,
    against: str,
) -> Comparison:
    """A Comparison from log-scale results: the one place they turn into relative changes and drops."""
    return Comparison(
        name=name,
        verdict=verdict,
        baseline=centre(reference),
        current=centre(current),
        change=math.expm1(change_log),
        tolerance=tolerance,
        threshold=as_drop(bound[0]),
        detectable=as_drop(bound[1]),
        noise=noise.sigma,
        runs=(len(reference), len(current)),
        against=against,
    )


def _verdict(change_log: float, threshold: float, tolerance: float, *, improved: str) -> str:
    if change_log <= -threshold:
        return REGRESSED
    if change_log >= threshold:
        return improved
    if change_log < math.log1p(-tolerance):
        return INCONCLUSIVE
    return OK


def confirm(
    first: Comparison,
    reference: Sequence[float],
    first_runs: Sequence[float],
    fresh: Sequence[float],
    *,
    alpha: float = DEFAULT_ALPHA,
    prior: float = DEFAULT_RUN_NOISE,
    samples: Sequence[float] = (),
) -> Comparison:
    """The verdict after a fresh run of a benchmark that looked regressed: REGRESSED only when the fresh run
    alone crosses the threshold too (then the change shown is that of all runs together), else UNCONFIRMED."""
    assert first.tolerance is not None and first.change is not None
    again = compare(first.name, reference, fresh, tolerance=first.tolerance, alpha=alpha, prior=prior, samples=samples)
    both = compare(
        first.name,
        reference,
        [*first_runs, *fresh],
        tolerance=first.tolerance,
        alpha=alpha,
        prior=prior,
        samples=samples,
    )
    verdict = REGRESSED if first.failed and again.failed else UNCONFIRMED
    return replace(
        both if verdict == REGRESSED else first,
        verdict=verdict,
        first=first.change,
        confirmation=again.change,
        against=first.against,
    )


def on_busy_machine(row: Comparison, busy: float) -> Comparison:
    """A regression measured while other work took ``busy`` of the machine: no verdict either way. Slowing a
    CPU-bound run is what contention does, so such a drop is not evidence against the code; nor is it a pass."""
    return replace(row, verdict=CONTENDED, busy=busy) if row.failed else row


def on_slower_machine(row: Comparison, machine_change: float, noise: float = MACHINE_NOISE) -> Comparison:
    """A regression measured while the machine itself ran ``machine_change`` slower than at recording (its speed
    probe): no verdict when that slowdown explains the drop, i.e. the drop net of it no longer crosses the
    threshold. A drop beyond the machine's own stays REGRESSED; a machine within ``noise`` of its speed changes
    nothing."""
    if not row.failed or machine_change >= -noise or row.change is None or row.threshold is None:
        return row
    net = (1 + row.change) / (1 + machine_change) - 1
    if -net > row.threshold:
        return row
    return replace(row, verdict=SLOWER_MACHINE, machine_change=machine_change)


def paired(
    name: str,
    a: Sequence[float],
    b: Sequence[float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    prior: float = DEFAULT_RUN_NOISE,
    samples: Sequence[float] = (),
    against: str = "A/B",
) -> Comparison:
    """A/B verdict from run medians measured in alternation: pair i is (a[i], b[i]). The change is the geometric
    mean of the ratios b/a; its noise is the spread of the per-pair log ratios, pooled with the prior of a
    difference of two runs."""
    if len(a) != len(b) or not a:
        raise ValueError(f"{name}: A and B need the same number of runs (at least one), got {len(a)} and {len(b)}")
    diffs = [math.log(y) - math.log(x) for x, y in zip(a, b, strict=True)]
    floor = math.sqrt(2.0) * max(math.log1p(prior), within_run_sigma(samples))
    change_log, measured = location_scale(diffs)
    noise = _pooled(measured, len(diffs), floor, PRIOR_DOF, 0.0)
    threshold, detectable, _ = bounds(noise, tolerance=tolerance, alpha=alpha, paired=True)
    verdict = _verdict(change_log, threshold, tolerance, improved=FASTER)
    return _row(name, verdict, a, b, change_log, tolerance, (threshold, detectable), noise, against)
