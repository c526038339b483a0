"""Terminal tables fit in 120 columns (issue 16): the results table that ends a run and the gate's verdict table,
for the longest test ids the suite generates and the widest numbers a real run shows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from trainperf.gate import verdict
from trainperf.gate import verdict_report as vr
from trainperf.gate.verdict import Comparison
from trainperf.measurement.cases import FULL_AXES, compile_matrix, loader_matrix
from trainperf.report import summary
from trainperf.results import (
    Compilation,
    CompileTime,
    DdpStep,
    Distributed,
    Epoch,
    Health,
    Identity,
    Loader,
    Rates,
    Result,
    TrainStep,
)
from trainperf.settings import Settings
from trainperf.telemetry import TelemetrySummary

PERF = Path(__file__).parent.parent / "perf"
WIDTH = 120
# The widest numbers of a real run: a ResNet-18 DataLoader on 16 GPUs, a cold max-autotune compile, an H200's memory.
RATES = Rates(img_per_s=987_654.321, img_per_s_rounds=(987_654.321,), img_per_s_spread=0.134, noisy=True)
TELEMETRY = TelemetrySummary(
    samples=10,
    gpu_util_pct=100.0,
    gpu_util_pct_mean=99.0,
    mem_util_pct=50.0,
    gpu_mem_used_mib=141_000.0,
    sm_clock_mhz=1980.0,
    power_w=700.0,
    temperature_c=80.0,
    throttled=True,
    throttle_reasons=["hw_slowdown"],
    rss_peak_mib=None,
)
HEALTH = Health(
    loss_first=12.5,
    loss_last=12.25,
    peak_mem_mib=141_234.0,
    telemetry=TELEMETRY,
    compilation=Compilation(cudagraph_skips=3),
)


def _test_functions() -> set[str]:
    """The test functions of the real perf/ suite."""
    found = set()
    for path in PERF.glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    return found


def _ids() -> dict[str, list[str]]:
    """Every case id the suite generates for each benchmark, from its full matrix on a two-node, 8-GPU-per-node
    machine with MPS (the longest ids there are), as perf/ parametrizes them."""
    settings = Settings(matrix="full", nnodes=2, overrides={k: tuple(v) for k, v in FULL_AXES.items()})
    training = settings.cases(mps_available=True)
    loaders = loader_matrix(("cpu", "cuda", "mps"), (0, 16))
    ddp = settings.distributed_cases(gpus_per_node=8)
    return {
        "test_train_step": [c.id for c in training],
        "test_epoch": [c.id for c in training],
        "test_compile_time": [c.id for c in compile_matrix(training)],
        "test_dataloader": [c.id for c in loaders],
        "test_ddp_train_step": [c.id for c in ddp],
    }


def _longest() -> dict[str, str]:
    """The longest test id of each benchmark."""
    return {function: f"{function}[{max(ids, key=len)}]" for function, ids in _ids().items()}


def _record(function: str, case_id: str) -> Result:
    """A record of the benchmark's kind, every column the summary shows filled at its widest."""
    identity = Identity(case_id=case_id)
    if function == "test_compile_time":
        return CompileTime(identity=identity, compile_cold_s=1_234.5, compile_warm_s=123.4)
    if function == "test_dataloader":
        return Loader(identity=identity, throughput=RATES)
    if function == "test_epoch":
        return Epoch(identity=identity, throughput=RATES, epoch_s=1_234.56, health=HEALTH)
    step = TrainStep(identity=identity, throughput=RATES, step_ms=1_234.56, compile_s=1_234.56, health=HEALTH)
    if function == "test_ddp_train_step":
        return DdpStep.of(step, Distributed(world_size=16, scaling_efficiency=0.987))
    return step


def _table_part(lines: list[str], rows: int) -> list[str]:
    return lines[: 2 + rows]


def test_the_ids_are_the_suites_and_long():
    longest = _longest()
    assert set(longest) <= _test_functions()  # the benchmarks of perf/, by their test functions
    assert max(map(len, longest.values())) >= 100  # what made the old tables ~250 columns wide
    assert longest["test_ddp_train_step"].endswith("-nodes2]")


def test_the_results_table_fits_for_the_longest_ids():
    longest = _longest()
    rows = [summary.row(name, _record(function, name[len(function) + 1 : -1])) for function, name in longest.items()]
    lines = summary.table_lines(rows)
    table = _table_part(lines, len(rows))
    assert all(len(line) <= WIDTH for line in table), "\n".join(line for line in table if len(line) > WIDTH)
    # every number is still shown: the widest of each column made it into the table
    train = next(line for line in table if " train_step " in line)
    for cell in ("987,654.3", "13.4%", "1,234.56", "141,234", "100", "12.50->12.25"):
        assert cell in train.split(), cell
    assert "1,234.5/123.4 c/w" in next(line for line in table if " compile_time " in line)
    assert " 99% " in next(line for line in table if " ddp_train_step " in line)
    # under it, after a blank line, one line per label: the full test id, and the flags where there are any
    assert lines[len(table)] == ""
    named = lines[len(table) + 1 :]
    assert len(named) == len(rows)
    for i, (line, name, cells) in enumerate(zip(named, longest.values(), rows, strict=True), start=1):
        assert line == f"#{i}  {name}" + (f"  {cells[-1]}" if cells[-1] else "")
    assert named[0].endswith("  NOISY,THROTTLED,NO-CUDAGRAPHS") and len(named[0]) > WIDTH - 10


def test_a_hundred_rows_of_every_id_fit_too():
    rows = [
        summary.row(f"{function}[{case_id}]", _record(function, case_id))
        for function, ids in _ids().items()
        for case_id in ids
    ]
    assert len(rows) > 100  # three-digit labels
    table = _table_part(summary.table_lines(rows), len(rows))
    assert max(map(len, table)) <= WIDTH


VERDICTS = [
    getattr(verdict, name) for name in dir(verdict) if name.isupper() and isinstance(getattr(verdict, name), str)
]


@pytest.mark.parametrize("label", ["baseline cuda-nvidia-h200-nvl-torch2.14-cuda13.0.json", "A/B x12"])
def test_the_verdict_table_fits_for_the_longest_ids_and_verdicts(label):
    assert verdict.UNCONFIRMED in VERDICTS and verdict.SLOWER_MACHINE in VERDICTS
    rows = [
        Comparison(
            name,
            text,
            baseline=987_654.3,
            current=987_654.3,
            change=-1.0,
            tolerance=0.05,
            threshold=0.456,  # above the tolerance: the "noise > tolerance" mark
            detectable=0.789,
            noise=0.123,
            runs=(10, 10),
            first=-0.5,
            confirmation=1.234,
            against=label,
        )
        for name in _longest().values()
        for text in VERDICTS
    ]
    lines = vr.table_lines(rows)
    table = _table_part(lines, len(rows))
    assert all(len(line) <= WIDTH for line in table), "\n".join(line for line in table if len(line) > WIDTH)
    assert all(row.underpowered for row in rows) and all(line.endswith(" *") for line in table[2:])
    assert "987,654.3" in table[2] and "-100.0%" in table[2] and "+123.4%" in table[2] and "10/10" in table[2]
    named = lines[len(table) :]
    assert named[0] == f"against {label}:"
    # one label per line, each with its full id and verdict
    width = len(f"#{len(rows)}")
    expected = [f"{f'#{i}':<{width}}  {r.name}: {r.verdict} (noise > tolerance)" for i, r in enumerate(rows, start=1)]
    assert named[1:] == expected
    assert all(len(line) <= WIDTH for line in vr.legend().splitlines())
