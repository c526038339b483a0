"""What the gate can detect: shares of simulated comparisons called REGRESSED and inconclusive, by true drop and
rounds.

    python scripts/gate_power.py [--cv 0.04] [--trials 1000] [--tolerance 0.05]

Noise is log-normal round to round with the given coefficient of variation, baseline and current alike.
"""

from __future__ import annotations

import argparse

from trainperf.verdict import DEFAULT_ALPHA, DEFAULT_TOLERANCE, INCONCLUSIVE, REGRESSED, verdict_rates

DROPS = (0.0, 0.03, 0.05, 0.07, 0.10, 0.15, 0.20)
ROUNDS = (3, 5, 10, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", type=float, default=0.04)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    args = parser.parse_args()
    print(
        f"noise CV {args.cv:.0%}, tolerance {args.tolerance:.0%}, alpha {DEFAULT_ALPHA}, {args.trials} trials per cell"
    )
    table = {
        rounds: [
            verdict_rates(drop=d, cv=args.cv, rounds=rounds, trials=args.trials, tolerance=args.tolerance)
            for d in DROPS
        ]
        for rounds in ROUNDS
    }
    for verdict, title in ((REGRESSED, "REGRESSED (fails the run)"), (INCONCLUSIVE, "inconclusive (fails strict)")):
        print(f"\nshare called {title}")
        print("rounds " + "".join(f"{f'drop {d:.0%}':>10}" for d in DROPS))
        for rounds, cells in table.items():
            print(f"{rounds:>6} " + "".join(f"{cell[verdict]:>10.1%}" for cell in cells))


if __name__ == "__main__":
    main()
