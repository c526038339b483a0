"""The report as text for a terminal, markdown for a job summary or PR comment, CSV of raw numbers, the short
summary table, or the JSON of a benchmark-history tool (:mod:`~trainperf.report.exports`); one section per
machine, always of its latest run.

pandas comes in through :mod:`trainperf.report.tables`, imported inside the functions that build tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trainperf.report import exports
from trainperf.report.load import Machine
from trainperf.report.summary import run_lines
from trainperf.results import K

if TYPE_CHECKING:
    from trainperf.report.tables import Section

EXPORTS = ("github-action-benchmark", "bencher")
FORMATS = ("text", "markdown", "csv", "summary", *EXPORTS)
# Formats a program reads: nothing but the format may go to stdout (chart paths go to stderr).
MACHINE_READABLE = ("csv", *EXPORTS)

Formatter = Callable[[Any], str]


def _fixed(digits: int) -> Formatter:
    return lambda value: f"{value:,.{digits}f}"


def _percent_of_fraction(value: Any) -> str:
    return f"{value * 100:.1f}"


def _spread(value: Any) -> str:
    return f"{value:.1%}"


def _times(value: Any) -> str:
    return f"{value:,.2f}x"


# (header, column, formatter) per section; the CSV has the raw columns instead.
TRAINING_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("configuration", K.case_id, str),
    ("epoch time (s)", K.epoch_s, _fixed(2)),
    ("img/s", K.img_per_s, _fixed(1)),
    ("GPU util %", K.gpu_util_pct, _fixed(0)),
    ("epoch img/s", "epoch_img_per_s", _fixed(1)),
    ("step ms", K.step_ms, _fixed(2)),
    ("compile s", K.compile_s, _fixed(2)),
    ("peak MiB", K.peak_mem_mib, _fixed(0)),
    ("MFU %", K.mfu, _percent_of_fraction),
    ("vs CPU", "vs_cpu", _times),
    ("vs eager", "vs_eager", _times),
    ("flags", "flags", str),
)
LOADER_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("loader", K.case_id, str),
    ("img/s", K.img_per_s, _fixed(1)),
    ("spread", K.img_per_s_spread, _spread),
    ("flags", "flags", str),
)
DISTRIBUTED_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("configuration", K.case_id, str),
    ("img/s", K.img_per_s, _fixed(1)),
    ("img/s per device", K.img_per_s_per_device, _fixed(1)),
    ("scaling %", K.scaling_efficiency, _percent_of_fraction),
    ("step ms", K.step_ms, _fixed(2)),
    ("spread", K.img_per_s_spread, _spread),
    ("flags", "flags", str),
)
COMPILE_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("configuration", K.case_id, str),
    ("cold s", K.compile_cold_s, _fixed(2)),
    ("warm s", K.compile_warm_s, _fixed(2)),
    ("cold/warm", K.warm_speedup, _times),
)
OTHER_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("benchmark", "name", str),
    ("kind", "kind", str),
    ("img/s", K.img_per_s, _fixed(1)),
)
COLUMNS = {
    "training": TRAINING_COLUMNS,
    "dataloader": LOADER_COLUMNS,
    "compile_time": COMPILE_COLUMNS,
    "distributed": DISTRIBUTED_COLUMNS,
    "other": OTHER_COLUMNS,
}


def when_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_machine(info: dict[str, Any]) -> str:
    cpu = f"CPU {info.get('cpu_model') or 'unknown'} ({info.get('cpu_count') or '?'} cores)"
    gpu = f"GPU {info.get('gpu_name') or 'unknown'}" if info.get("cuda_available") else "no GPU"
    versions = f"torch {info.get('torch') or '?'}"
    if info.get("cuda_available"):
        versions += f", CUDA {info.get('cuda_runtime') or '?'}"
    return f"{gpu}, {cpu}, {versions}"


def _commit_text(commit: dict[str, Any]) -> str:
    if not isinstance(commit.get("id"), str):
        return "commit unknown"
    extras = [str(commit["branch"])] if commit.get("branch") else []
    if commit.get("dirty"):
        extras.append("dirty")
    return f"commit {commit['id'][:7]}" + (f" ({', '.join(extras)})" if extras else "")


def describe_run(machine: Machine) -> str:
    run = machine.latest
    count = len(machine.runs)
    history = "1 run" if count == 1 else f"{count} runs since {when_text(machine.runs[0].when)}"
    return f"Latest run {when_text(run.when)}, {_commit_text(run.commit)}, {run.path.name}; {history}"


def _headers(section: Section) -> list[str]:
    return [header for header, _, _ in COLUMNS[section.name]]


def _left_aligned(section: Section) -> list[bool]:
    return [fmt is str for _, _, fmt in COLUMNS[section.name]]


def _cells(section: Section) -> list[list[str]]:
    from trainperf.report.tables import missing

    records = section.frame.to_dict("records")
    return [["-" if missing(r[col]) else fmt(r[col]) for _, col, fmt in COLUMNS[section.name]] for r in records]


def _text_table(section: Section) -> list[str]:
    headers, cells, left = _headers(section), _cells(section), _left_aligned(section)
    widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        padded = (c.ljust(w) if lft else c.rjust(w) for c, w, lft in zip(row, widths, left, strict=True))
        return "  ".join(padded).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(row) for row in cells)]


def _markdown_table(section: Section) -> list[str]:
    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    rule = "|" + "|".join(":---" if lft else "---:" for lft in _left_aligned(section)) + "|"
    return [line(_headers(section)), rule, *(line(row) for row in _cells(section))]


def _preamble(machines: Sequence[Machine]) -> list[str]:
    if len(machines) < 2:
        return []
    return [f"{len(machines)} machines: each has its own section; their numbers are not comparable.", ""]


def render_text(machines: Sequence[Machine]) -> str:
    from trainperf.report.tables import sections

    out = _preamble(machines)
    for machine in machines:
        out += [f"== machine {machine.label} ==", describe_machine(machine.latest.info), describe_run(machine)]
        for section in sections(machine.latest):
            out += ["", section.title, *_text_table(section)]
        out.append("")
    return "\n".join(out)


def render_markdown(machines: Sequence[Machine]) -> str:
    from trainperf.report.tables import sections

    out = _preamble(machines)
    for machine in machines:
        out += [f"## trainperf: machine `{machine.label}`", ""]
        out += [f"{describe_machine(machine.latest.info)}. {describe_run(machine)}."]
        for section in sections(machine.latest):
            out += ["", f"### {section.title}", "", *_markdown_table(section)]
        out.append("")
    return "\n".join(out)


def render_csv(machines: Sequence[Machine]) -> str:
    from trainperf.report.tables import csv_frame

    return csv_frame(machines).to_csv(index=False, lineterminator="\n")


def render_summary(machines: Sequence[Machine]) -> str:
    """The short table of each machine's latest run (no pandas); given one run, the table alone."""
    if len(machines) == 1 and len(machines[0].runs) == 1:
        return "\n".join([*run_lines(machines[0].latest), ""])
    out = _preamble(machines)
    for machine in machines:
        out += [f"== machine {machine.label} ==", describe_run(machine), *run_lines(machine.latest), ""]
    return "\n".join(out)


def render(machines: Sequence[Machine], fmt: str = "text") -> str:
    """The report of each machine's latest run in ``fmt`` (one of FORMATS)."""
    renderers = {
        "text": render_text,
        "markdown": render_markdown,
        "csv": render_csv,
        "summary": render_summary,
        "github-action-benchmark": exports.render_github_action_benchmark,
        "bencher": exports.render_bencher,
    }
    return renderers[fmt](machines)
