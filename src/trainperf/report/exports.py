"""A run's throughput for the tools that chart benchmark history across commits: github-action-benchmark's
``customBiggerIsBetter`` JSON and Bencher Metric Format (BMF) JSON, both with img/s as a bigger-is-better number.

Every benchmark with a throughput is exported (train step, epoch, DataLoader, data-parallel step; compile time has
none): its value is the median img/s over the timed rounds, the number the gate judges; the slowest and fastest
round give github-action-benchmark's ``range`` text and Bencher's ``lower_value``/``upper_value``. A report of one
machine names each benchmark by its pytest-benchmark name (the test id), so its history continues from run to run;
of several machines, the name is followed by the machine's label, because their numbers are not comparable and
must not land in one series. Each machine contributes its latest run, as in every other format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from trainperf.report.load import Benchmark, Machine

UNIT = "img/s"
# Bencher's built-in Throughput measure (operations per second): an image is an operation.
BENCHER_MEASURE = "throughput"


@dataclass(frozen=True)
class Point:
    """One benchmark's throughput in one run, as the exports carry it."""

    name: str
    kind: str
    machine: str
    img_per_s: float  # median over the rounds
    rounds: tuple[float, ...]  # img/s of each timed round
    spread: float | None  # IQR/median of the rounds
    noisy: bool

    @property
    def low(self) -> float | None:
        return min(self.rounds) if self.rounds else None

    @property
    def high(self) -> float | None:
        return max(self.rounds) if self.rounds else None


def _point(benchmark: Benchmark, machine: Machine, qualified: bool) -> Point | None:
    rates = benchmark.record.rates
    if rates is None or not math.isfinite(rates.img_per_s):
        return None  # no throughput (compile time, a kind this trainperf does not know), or none to chart
    name = f"{benchmark.name} ({machine.label})" if qualified else benchmark.name
    return Point(
        name=name,
        kind=benchmark.kind,
        machine=machine.label,
        img_per_s=rates.img_per_s,
        rounds=tuple(r for r in rates.img_per_s_rounds if math.isfinite(r)),
        spread=rates.img_per_s_spread,
        noisy=bool(rates.noisy),
    )


def points(machines: Sequence[Machine]) -> list[Point]:
    """The throughput of every benchmark of each machine's latest run that has one, in the run's order."""
    qualified = len(machines) > 1
    found = (_point(b, m, qualified) for m in machines for b in m.latest.benchmarks)
    return [p for p in found if p is not None]


def _extra(point: Point) -> str:
    lines = [f"kind: {point.kind}", f"machine: {point.machine}", f"rounds: {len(point.rounds)}"]
    if point.spread is not None:
        lines.append(f"spread (IQR/median): {point.spread:.1%}")
    if point.noisy:
        lines.append("NOISY: the rounds disagree too much to trust the median")
    return "\n".join(lines)


def github_action_benchmark(machines: Sequence[Machine]) -> list[dict[str, object]]:
    """The entries of a ``customBiggerIsBetter`` file: ``name``, ``unit``, ``value``, and ``range`` (the slowest
    and fastest round) and ``extra`` (shown in the chart's tooltip)."""
    out: list[dict[str, object]] = []
    for point in points(machines):
        entry: dict[str, object] = {"name": point.name, "unit": UNIT, "value": point.img_per_s}
        if point.low is not None and point.high is not None:
            entry["range"] = f"rounds min {point.low:.1f}, max {point.high:.1f}"
        entry["extra"] = _extra(point)
        out.append(entry)
    return out


def bencher(machines: Sequence[Machine]) -> dict[str, dict[str, dict[str, float]]]:
    """A BMF object: benchmark name -> {"throughput": {value, lower_value, upper_value}}, the bounds being the
    slowest and fastest round."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for point in points(machines):
        metric = {"value": point.img_per_s}
        if point.low is not None and point.high is not None:
            metric.update(lower_value=point.low, upper_value=point.high)
        out[point.name] = {BENCHER_MEASURE: metric}
    return out


def render_github_action_benchmark(machines: Sequence[Machine]) -> str:
    return json.dumps(github_action_benchmark(machines), indent=2) + "\n"


def render_bencher(machines: Sequence[Machine]) -> str:
    return json.dumps(bencher(machines), indent=2) + "\n"
