"""The ``trainperf`` command.

- ``trainperf report PATH...``: tables (and charts) of saved runs, and the verdict table of verdict JSON files;
  ``--format github-action-benchmark`` or ``bencher`` exports the runs' img/s for those tools.
- ``trainperf ab [--a-rev REV] [--b-rev REV] [--a-python PY] ... -- PYTEST_ARGS``: interleaved A/B.
- ``trainperf baseline record|promote|show``: the baseline's life cycle.

Bad input exits with code 2 and one line ``trainperf COMMAND: PATH: problem`` on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from trainperf import __version__
from trainperf import report as rp
from trainperf.gate import baseline_commands as bc
from trainperf.gate import verdict_report as vr
from trainperf.gate.baseline import DEFAULT_KEEP_RUNS, BaselineError, load
from trainperf.gate.verdict import AB_ALPHA, DEFAULT_ALPHA, DEFAULT_RUN_NOISE, DEFAULT_TOLERANCE
from trainperf.report import charts


def _fraction(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction (0.05) or a percentage (5%), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (0.05 = 5%), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _policy_options(parser: argparse.ArgumentParser, alpha: float = DEFAULT_ALPHA) -> None:
    parser.add_argument("--alpha", type=_fraction, default=alpha, metavar="P", help=f"default: {alpha}")
    parser.add_argument(
        "--run-noise",
        type=_fraction,
        default=DEFAULT_RUN_NOISE,
        metavar="FRACTION",
        help="between-run noise assumed before runs measure their own (default: 3%%)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainperf", description="Tools for trainperf's benchmark results.")
    parser.add_argument("--version", action="version", version=f"trainperf {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = commands.add_parser(
        "report",
        help="tables and charts of saved runs; verdict tables of verdict JSON",
        description="Print the latest run's tables, per machine, from pytest-benchmark JSON written by trainperf: "
        "--benchmark-json files, autosaves, or whole .benchmarks/ directories (every *.json below, ordered by "
        "the run's datetime). A verdict file (--trainperf-verdict-json, trainperf ab --json) prints its "
        "verdict table.",
    )
    report.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="JSON file or directory of them")
    report.add_argument(
        "--format",
        choices=rp.FORMATS,
        default="text",
        help="text for a terminal, markdown for $GITHUB_STEP_SUMMARY or a PR comment, csv with raw numbers, "
        "summary for the short one-table view that ends a pytest run, one row per benchmark; "
        "github-action-benchmark (its customBiggerIsBetter JSON) or bencher (Bencher Metric Format JSON) for "
        "those tools' history charts, median img/s per benchmark (default: text)",
    )
    report.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write the report there instead of stdout (default: stdout)"
    )
    report.add_argument("--plot", type=Path, metavar="DIR", help="also write PNG charts there (default: none)")
    report.add_argument(
        "--baseline", type=Path, metavar="FILE", help="baseline JSON drawn on the charts; needs --plot (default: none)"
    )

    ab = commands.add_parser(
        "ab",
        help="interleaved A/B of two revisions or interpreters, decided from paired ratios",
        description="Run the selected benchmarks as alternating fresh pytest processes of side A and side B "
        "(AB, BA, AB, ...) and decide from the per-pair ratios. Arguments after -- go to every pytest run, "
        "e.g. -- perf/ -m 'cpu and train_step'. Exit 0 no regression, 1 B regressed, 2 bad input or a side "
        "that could not be measured.",
    )
    for side in ("a", "b"):
        up = side.upper()
        ab.add_argument(f"--{side}-rev", metavar="REV", help=f"git revision of side {up} (default: the working tree)")
        ab.add_argument(f"--{side}-python", metavar="PY", help=f"Python interpreter of side {up} (default: this one)")
        ab.add_argument(
            f"--{side}-args", default="", metavar="ARGS", help=f"extra pytest arguments of side {up}, one string"
        )
    ab.add_argument("--pairs", type=_positive_int, default=4, metavar="N", help="A/B pairs (default: 4)")
    ab.add_argument("--tolerance", type=_fraction, default=DEFAULT_TOLERANCE, metavar="FRACTION", help="default: 5%%")
    ab.add_argument("--timeout-s", type=float, default=900.0, metavar="S", help="limit per pytest run (default: 900)")
    ab.add_argument("--json", type=Path, metavar="PATH", help="write the verdicts there (trainperf report reads it)")
    ab.add_argument("--repo", type=Path, default=Path("."), metavar="DIR", help="git repository (default: .)")
    _policy_options(ab, alpha=AB_ALPHA)
    ab.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARGS")

    baseline = commands.add_parser("baseline", help="record, promote or show baselines")
    actions = baseline.add_subparsers(dest="action", metavar="ACTION")
    record = actions.add_parser(
        "record",
        help="pytest perf/ --trainperf-update-baselines: several fresh-process runs, adaptive",
        description="Records this machine's baseline: runs pytest with --trainperf-update-baselines and the "
        "arguments after -- (default: perf/). Exit 0 written, 6 baseline not updated, 4 bad input.",
    )
    record.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARGS")
    promote = actions.add_parser(
        "promote",
        help="saved runs (one JSON per run) become the entries' runs: appended, or replacing them",
        description="Each FILE is one run (pytest-benchmark JSON of this suite, e.g. an autosave of the default "
        "branch). Exit 0 written, 2 bad input, 6 baseline not updated.",
    )
    promote.add_argument("runs", nargs="+", type=Path, metavar="FILE")
    promote.add_argument(
        "--baseline-dir", type=Path, default=Path("baselines"), metavar="DIR", help="default: baselines"
    )
    promote.add_argument(
        "--keep", type=_positive_int, default=DEFAULT_KEEP_RUNS, metavar="N", help="newest runs kept (default: 10)"
    )
    promote.add_argument("--replace", action="store_true", help="the given runs replace an entry's runs")
    peak = commands.add_parser(
        "peak",
        help="measure the device's dense matmul TFLOP/s per dtype, beside the datasheet peak MFU uses",
        description="Times square matmuls per dtype (best of several windows) for MFU against what the part does.",
    )
    peak.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    peak.add_argument("--dtype", default="bf16,fp16,tf32,fp32", metavar="LIST", help="default: bf16,fp16,tf32,fp32")
    peak.add_argument("--n", type=_positive_int, default=8192, metavar="N", help="matrix size (default: 8192)")
    show = actions.add_parser("show", help="runs, between-run noise, threshold and detectable drop per benchmark")
    show.add_argument("paths", nargs="*", type=Path, default=[Path("baselines")], metavar="PATH")
    _policy_options(show)
    return parser


def _is_verdict_file(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        return vr.is_verdict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def _verdict_lines(path: Path) -> list[str]:
    rows, meta = vr.parse(json.loads(path.read_text(encoding="utf-8")), str(path))
    mode, key, code = meta.get("mode"), meta.get("machine_key"), meta.get("exit_code")
    head = f"{path}: {mode} verdicts, machine key {key}, exit {code}"
    return [head, *vr.table_lines(rows), *(str(n) for n in meta.get("notes", [])), ""]


def _runs_report(args: argparse.Namespace, runs: list[Path]) -> tuple[str, list[Path]]:
    """The rendered report of saved runs, and the charts written (``--plot``)."""
    machines = rp.group_by_machine(rp.load_runs(runs))
    baseline = load(args.baseline) if args.baseline else None
    if baseline is not None:
        charts.check_baseline(machines, baseline, args.baseline)
    text = rp.render(machines, args.format)
    return text, charts.write_plots(machines, args.plot, baseline) if args.plot else []


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise rp.ReportError(path, f"cannot write the report ({exc.strerror or exc})") from None


def report(args: argparse.Namespace) -> int:
    verdicts = [p for p in args.paths if _is_verdict_file(p)]
    runs = [p for p in args.paths if p not in verdicts]
    if verdicts and args.format in rp.EXPORTS:
        print(f"trainperf report: {verdicts[0]}: a verdict file; --format {args.format} exports runs", file=sys.stderr)
        return 2
    out: list[str] = []
    written: list[Path] = []
    try:
        for path in verdicts:
            out += _verdict_lines(path)
        if runs:
            text, written = _runs_report(args, runs)
            out.append(text)
        report_text = "\n".join(out) if verdicts else out[0]
        if args.output:
            _write(args.output, report_text)
    except (rp.ReportError, BaselineError, vr.VerdictFileError) as exc:
        print(f"trainperf report: {exc}", file=sys.stderr)
        return 2
    if not args.output:
        sys.stdout.write(report_text)
    # The chart paths would corrupt a CSV or JSON on stdout.
    for path in written:
        print(path, file=sys.stderr if args.format in rp.MACHINE_READABLE else sys.stdout)
    return 0


def ab(args: argparse.Namespace) -> int:
    from trainperf.gate import ab as abm

    sides = (
        abm.Side("A", args.a_rev, args.a_python, tuple(shlex.split(args.a_args))),
        abm.Side("B", args.b_rev, args.b_python, tuple(shlex.split(args.b_args))),
    )
    print(f"trainperf ab: {sides[0].describe()}; {sides[1].describe()}; {args.pairs} pairs (AB, BA, ...)")
    try:
        result = abm.run_ab(
            args.repo,
            sides,
            args.pytest_args,
            pairs=args.pairs,
            tolerance=args.tolerance,
            alpha=args.alpha,
            prior=args.run_noise,
            timeout_s=args.timeout_s,
        )
    except abm.ABError as exc:
        print(f"trainperf ab: {exc}", file=sys.stderr)
        return 2
    for line in [*vr.table_lines(result.rows), vr.legend()]:
        print(line)
    for row in result.rows:
        if row.failed:
            print(row.line())
    notes = [f"{sides[0].describe()}; {sides[1].describe()}; {result.seconds:.0f} s"]
    if args.json:
        doc = vr.document(result.rows, mode="ab", machine_key=result.key, exit_code=result.exit_code, notes=notes)
        vr.write(args.json, doc)
    print(f"trainperf ab: {'REGRESSED' if result.exit_code else 'no regression'} ({result.seconds:.0f} s)")
    return result.exit_code


def peak(args: argparse.Namespace) -> int:
    """``trainperf peak``: exit 0 measured, 2 bad input (an unknown dtype, a device this machine lacks)."""
    import torch

    from trainperf.measurement import peak as pk

    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    if unknown := [d for d in dtypes if d not in pk.DTYPES]:
        print(f"trainperf peak: --dtype {','.join(unknown)}: expected some of {','.join(pk.DTYPES)}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"trainperf peak: --device {args.device}: CUDA is not available on this machine", file=sys.stderr)
        return 2
    print("\n".join(pk.table(args.device, dtypes, args.n)))
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
        print("trainperf: error: a command is required (report, ab, baseline, peak)", file=sys.stderr)
        return 2
    if args.command == "ab":
        return ab(args)
    if args.command == "peak":
        return peak(args)
    if args.command == "baseline":
        if args.action == "record":
            return bc.record(args.pytest_args)
        if args.action == "promote":
            return bc.promote(args.runs, args.baseline_dir, keep=args.keep, replace=args.replace)
        if args.action == "show":
            return bc.show(args.paths, alpha=args.alpha, prior=args.run_noise)
        print("trainperf baseline: error: an action is required (record, promote, show)", file=sys.stderr)
        return 2
    if args.baseline and not args.plot:
        print("trainperf report: --baseline is drawn on charts only: add --plot DIR", file=sys.stderr)
        return 2
    return report(args)


if __name__ == "__main__":
    raise SystemExit(main())
