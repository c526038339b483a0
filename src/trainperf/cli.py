"""The ``trainperf`` command: ``trainperf report PATH...`` prints tables (and writes charts) of saved runs.

Bad input exits with code 2 and one line ``trainperf report: PATH: problem`` on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from trainperf import __version__, charts
from trainperf import report as rp
from trainperf.baseline import BaselineError, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainperf", description="Tools for trainperf's benchmark results.")
    parser.add_argument("--version", action="version", version=f"trainperf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = commands.add_parser(
        "report",
        help="tables and charts of saved pytest-benchmark runs",
        description="Print the latest run's tables, per machine, from pytest-benchmark JSON written by trainperf: "
        "--benchmark-json files, autosaves, or whole .benchmarks/ directories (every *.json below, ordered by "
        "the run's datetime).",
    )
    report.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="JSON file or directory of them")
    report.add_argument(
        "--format",
        choices=rp.FORMATS,
        default="text",
        help="text for a terminal, markdown for $GITHUB_STEP_SUMMARY or a PR comment, csv with raw numbers "
        "(default: text)",
    )
    report.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="also write PNG charts there: img/s history per benchmark, img/s of the latest run (default: none)",
    )
    report.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="trainperf baseline JSON drawn as a line on the history charts; needs --plot (default: none)",
    )
    return parser


def report(args: argparse.Namespace) -> int:
    try:
        machines = rp.group_by_machine(rp.load_runs(args.paths))
        baseline = load(args.baseline) if args.baseline else None
        if baseline is not None:
            charts.check_baseline(machines, baseline, args.baseline)
        text = rp.render(machines, args.format)
        written = charts.write_plots(machines, args.plot, baseline) if args.plot else []
    except (rp.ReportError, BaselineError) as exc:
        print(f"trainperf report: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    # The chart paths would corrupt a CSV on stdout.
    for path in written:
        print(path, file=sys.stderr if args.format == "csv" else sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainperf`` console script; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (code 2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("trainperf: error: a command is required (report)", file=sys.stderr)
        return 2
    if args.baseline and not args.plot:
        print("trainperf report: --baseline is drawn on charts only: add --plot DIR", file=sys.stderr)
        return 2
    return report(args)


if __name__ == "__main__":
    raise SystemExit(main())
