"""Slower or not: the comparison of a benchmark's per-round img/s with its baseline's. Pure logic, no pytest.

A benchmark REGRESSED when both hold:
- the estimated change is a drop beyond its tolerance.  The estimate is the Hodges-Lehmann shift of the
  log img/s samples (the median of all current/baseline pairwise ratios): robust to a stray slow round like a
  median, but nearly as precise as a mean, which is what lets 10 rounds separate a 5% tolerance from noise;
- the drop is significant: a one-sided Mann-Whitney U test of "current rounds are slower" gives p <= alpha.
Faster beyond the tolerance with the same evidence is "improved — baseline stale" (never a failure). A drop
beyond the tolerance that is not significant is "inconclusive", never "ok": the rounds were too few or too noisy
to tell, which a person must see (strict mode fails it).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

OK = "ok"
REGRESSED = "REGRESSED"
STALE = "improved — baseline stale"
INCONCLUSIVE = "inconclusive — drop not significant"
NEW = "new — no baseline"
MISSING = "missing — in baseline but not run"

DEFAULT_TOLERANCE = 0.05
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    name: str
    verdict: str
    baseline: float | None = None  # median img/s
    current: float | None = None
    change: float | None = None  # estimated relative change, -0.10 = 10% slower
    tolerance: float | None = None
    p_value: float | None = None  # one-sided, in the direction of the change
    rounds: tuple[int, int] | None = None  # (baseline, current) samples
    against: str = "baseline"

    @property
    def failed(self) -> bool:
        return self.verdict == REGRESSED

    def line(self) -> str:
        """One line a person reads in a failure summary."""
        if self.change is None:
            return f"{self.verdict}: {self.name} (against {self.against})"
        evidence = "p=n/a" if self.p_value is None else f"p={self.p_value:.2g}"
        assert self.rounds is not None and self.tolerance is not None
        return (
            f"{self.verdict}: {self.name}: {self.against} {self.baseline:,.1f} img/s, current {self.current:,.1f} "
            f"img/s, change {self.change:+.1%}, tolerance {self.tolerance:.1%}, {evidence} "
            f"(one-sided Mann-Whitney U, {self.rounds[0]} vs {self.rounds[1]} rounds)"
        )


def smallest_p(n: int, m: int) -> float:
    """The smallest one-sided Mann-Whitney U p-value that n vs m samples can reach (complete separation)."""
    return 1.0 / math.comb(n + m, n)


def decidable(n: int, m: int, alpha: float = DEFAULT_ALPHA) -> bool:
    """Whether n vs m rounds can ever be significant at ``alpha``; 3 vs 3 is the least at 0.05."""
    return smallest_p(n, m) <= alpha


def shift_ratio(baseline: Sequence[float], current: Sequence[float]) -> float:
    """Hodges-Lehmann estimate of current/baseline: the median of all pairwise ratios."""
    logs = [math.log(c) - math.log(b) for c in current for b in baseline]
    return math.exp(statistics.median(logs))


def compare(
    name: str,
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    against: str = "baseline",
) -> Comparison:
    """Verdict for one benchmark from its per-round img/s samples."""
    from scipy.stats import mannwhitneyu

    if not baseline or not current:
        raise ValueError(f"{name}: both sample lists must be non-empty")
    change = shift_ratio(baseline, current) - 1.0
    alternative = "less" if change < 0 else "greater"
    p_value = float(mannwhitneyu(current, baseline, alternative=alternative).pvalue)
    significant = p_value <= alpha
    if change < -tolerance and significant:
        verdict = REGRESSED
    elif change > tolerance and significant:
        verdict = STALE
    elif change < -tolerance:
        verdict = INCONCLUSIVE
    else:
        verdict = OK
    return Comparison(
        name=name,
        verdict=verdict,
        baseline=statistics.median(baseline),
        current=statistics.median(current),
        change=change,
        tolerance=tolerance,
        p_value=p_value,
        rounds=(len(baseline), len(current)),
        against=against,
    )


def verdict_rates(
    *,
    drop: float,
    cv: float,
    rounds: int,
    trials: int,
    tolerance: float = DEFAULT_TOLERANCE,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> dict[str, float]:
    """Share of ``trials`` simulated comparisons given each verdict when throughput truly fell by ``drop`` (0 for
    clean runs), with log-normal round-to-round noise of coefficient of variation ``cv``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sigma = math.sqrt(math.log1p(cv**2))
    counts = {OK: 0, REGRESSED: 0, INCONCLUSIVE: 0, STALE: 0}
    for _ in range(trials):
        base = 1000.0 * np.exp(rng.normal(0.0, sigma, rounds))
        cur = 1000.0 * (1.0 - drop) * np.exp(rng.normal(0.0, sigma, rounds))
        counts[compare("sim", base.tolist(), cur.tolist(), tolerance=tolerance, alpha=alpha).verdict] += 1
    return {verdict: n / trials for verdict, n in counts.items()}


def detection_rate(**kwargs: float) -> float:
    """Share of simulated comparisons flagged REGRESSED (see ``verdict_rates`` for the arguments)."""
    return verdict_rates(**kwargs)[REGRESSED]  # type: ignore[arg-type]
