"""What the gate can detect on a shared runner: share of runs failed (REGRESSED) by true drop, simulated with
two-level noise (trainperf.gate.power): against a stored baseline with and without confirmation, and interleaved A/B.

    python scripts/gate_power.py [--process-cv 0.05] [--session-cv 0.05] [--reference-runs 3] [--pairs 4]

Defaults are what this project measured on its 2-core shared VM (docs/gate.md, "What the gate can and cannot detect").
The "no change" column is the false-alarm rate; every other column is the detection rate.
"""

from __future__ import annotations

import argparse

from trainperf.gate.power import Machine, ab_rates, stored_rates
from trainperf.gate.verdict import DEFAULT_TOLERANCE

DROPS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process-cv", type=float, default=0.05, help="run-to-run noise of fresh processes")
    parser.add_argument("--session-cv", type=float, default=0.05, help="shift shared by the runs of one session")
    parser.add_argument("--within-cv", type=float, default=0.03, help="round-to-round noise inside a run")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reference-runs", type=int, default=3, help="runs in the stored baseline")
    parser.add_argument("--pairs", type=int, default=4, help="A/B pairs")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    args = parser.parse_args()
    machine = Machine(args.process_cv, args.session_cv, args.within_cv, args.rounds)
    print(
        f"process noise {args.process_cv:.0%}, session noise {args.session_cv:.0%}, round noise {args.within_cv:.0%} "
        f"x {args.rounds} rounds, tolerance {args.tolerance:.0%}, {args.trials} trials per cell; share failed:"
    )
    common = {"trials": args.trials, "tolerance": args.tolerance}
    rows = {
        f"baseline of {args.reference_runs} runs, no confirmation": lambda d: stored_rates(
            machine, drop=d, reference_runs=args.reference_runs, confirmation=False, **common
        ),
        f"baseline of {args.reference_runs} runs, confirmed": lambda d: stored_rates(
            machine, drop=d, reference_runs=args.reference_runs, confirmation=True, **common
        ),
        f"A/B, {args.pairs} pairs": lambda d: ab_rates(machine, drop=d, pairs=args.pairs, **common),
    }
    print("| mode | " + " | ".join("no change" if d == 0 else f"-{d:.0%}" for d in DROPS) + " |")
    print("|---|" + "---|" * len(DROPS))
    for label, rate in rows.items():
        print(f"| {label} | " + " | ".join(f"{rate(d):.1%}" for d in DROPS) + " |")


if __name__ == "__main__":
    main()
