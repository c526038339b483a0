"""``trainperf report --plot``: PNG charts of saved runs, one set per machine. matplotlib and pandas are imported
only when charts are drawn."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainperf.gate.baseline import Baseline
from trainperf.report.load import Machine, ReportError
from trainperf.report.render import when_text
from trainperf.results import K

if TYPE_CHECKING:
    import pandas as pd


def safe_name(text: str) -> str:
    """``text`` as a portable file-name part: letters, digits, ``.``, ``_``, ``-``; long names end in a hash."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "unnamed"
    if len(name) > 120:
        name = f"{name[:100]}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"
    return name


@dataclass(frozen=True)
class Point:
    index: int
    when: datetime
    img_per_s: float
    low: float
    high: float


def history(machine: Machine) -> dict[str, list[Point]]:
    """img/s of every benchmark that has one, run by run (index = position in the machine's history)."""
    out: dict[str, list[Point]] = {}
    for index, run in enumerate(machine.runs):
        for b in run.benchmarks:
            rates = b.record.rates
            if rates is None:
                continue
            rounds = rates.img_per_s_rounds or (rates.img_per_s,)
            out.setdefault(b.name, []).append(Point(index, run.when, rates.img_per_s, min(rounds), max(rounds)))
    return out


def check_baseline(machines: Sequence[Machine], baseline: Baseline, path: Path) -> None:
    """A baseline is drawn only on its own machine's charts; one that matches no machine is an error."""
    keys = sorted({m.key for m in machines})
    if baseline.machine_key not in keys:
        raise ReportError(path, f"baseline is for machine {baseline.machine_key}, the runs are from {', '.join(keys)}")


def write_plots(machines: Sequence[Machine], directory: Path, baseline: Baseline | None = None) -> list[Path]:
    """Write, per machine, the img/s history of every benchmark and a bar chart of the latest run as PNG files in
    ``directory`` (created if missing); return their paths. ``baseline`` is drawn on its own machine's charts."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError as exc:
        raise ReportError(directory, f"charts need matplotlib (pip install matplotlib): {exc}") from exc
    from trainperf.report.tables import training_frame

    if directory.exists() and not directory.is_dir():
        raise ReportError(directory, "not a directory")
    written: list[Path] = []

    def save(stem: str, fig: Any) -> None:
        path, n = directory / f"{stem}.png", 1
        while path in written:  # two ids that differ only in characters a file name cannot hold
            n += 1
            path = directory / f"{stem}-{n}.png"
        FigureCanvasAgg(fig).print_png(str(path))
        written.append(path)

    try:
        directory.mkdir(parents=True, exist_ok=True)
        for machine in machines:
            own = baseline if baseline is not None and baseline.machine_key == machine.key else None
            for name, points in history(machine).items():
                entry = own.entries.get(name) if own else None
                fig = _history_figure(machine, name, points, entry.img_per_s if entry else None)
                save(f"history-{safe_name(machine.label)}-{safe_name(name)}", fig)
            table = training_frame(machine.latest)
            if not table.empty:
                save(f"latest-{safe_name(machine.label)}", _latest_figure(machine, table))
    except OSError as exc:
        raise ReportError(directory, f"cannot write charts ({exc.strerror or exc})") from None
    return written


def _history_figure(machine: Machine, name: str, points: list[Point], baseline: float | None) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.86, bottom=0.2)
    ax = fig.add_subplot()
    x = [p.index for p in points]
    y = [p.img_per_s for p in points]
    spread = [[max(p.img_per_s - p.low, 0.0) for p in points], [max(p.high - p.img_per_s, 0.0) for p in points]]
    ax.errorbar(x, y, yerr=spread, fmt="o-", capsize=3, label="median img/s (bars: min..max round)")
    if baseline is not None:
        ax.axhline(baseline, color="tab:red", linestyle="--", label=f"baseline {baseline:,.1f} img/s")
    step = max(1, math.ceil(len(machine.runs) / 12))
    ticks = list(range(0, len(machine.runs), step))
    ax.set_xticks(ticks, [machine.runs[i].when.strftime("%m-%d\n%H:%M") for i in ticks], fontsize=8)
    ax.set_xlim(-0.5, len(machine.runs) - 0.5)
    ax.set_ylabel("img/s")
    ax.set_xlabel("run (UTC)")
    ax.set_title(f"{name}\n{machine.label}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def _latest_figure(machine: Machine, table: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    from trainperf.report.tables import missing

    rows = len(table)
    fig = Figure(figsize=(10, 1.6 + 0.55 * rows), dpi=100)
    fig.subplots_adjust(left=0.42, right=0.95, top=1 - 0.7 / (1.6 + 0.55 * rows), bottom=0.5 / (1.6 + 0.55 * rows))
    ax = fig.add_subplot()
    positions = list(range(rows))
    for offset, column, label in ((-0.2, K.img_per_s, "step img/s"), (0.2, "epoch_img_per_s", "epoch img/s")):
        shown = [(p, v) for p, v in zip(positions, table[column], strict=True) if not missing(v)]
        if shown:
            bars = ax.barh([p + offset for p, _ in shown], [v for _, v in shown], height=0.4, label=label)
            ax.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=2)
    ax.set_yticks(positions, list(table[K.case_id]), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("img/s")
    ax.margins(x=0.15)
    ax.set_title(f"{machine.label}: {when_text(machine.latest.when)}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return fig
