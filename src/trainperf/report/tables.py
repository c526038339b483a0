"""The pandas tables of one saved run: a frame per section (training, DataLoader, compile time, distributed,
unknown kinds) and the long CSV frame of raw numbers.

The one module of the report that imports pandas at the top; the rest of the package and the CLI import it
inside the functions that need a table, so ``trainperf --version`` and the plugin never pay for pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from trainperf.measurement.cases import AXES
from trainperf.report.load import Machine, Run
from trainperf.results import CompileTime, DdpStep, Epoch, K, Loader, TrainStep

# The stored numbers a table may show, as float columns (NaN where a kind has none).
NUMBERS = (
    K.img_per_s,
    K.img_per_s_spread,
    K.step_ms,
    K.epoch_s,
    K.compile_s,
    K.compile_cold_s,
    K.compile_warm_s,
    K.warm_speedup,
    K.peak_mem_mib,
    K.gpu_util_pct,
    K.mfu,
    K.achieved_tflops,
    K.world_size,
    K.img_per_s_per_device,
    K.scaling_efficiency,
    K.cudagraph_skips,
)
LOADER_KEYS = ("num_workers", "pin_memory", "resident")
TRAINING_KINDS = (TrainStep.KIND, Epoch.KIND)
OWN_SECTIONS = tuple(kind.KIND for kind in (TrainStep, Epoch, Loader, CompileTime, DdpStep))
CSV_COLUMNS = (
    "machine_key",
    "run",
    "section",
    K.case_id,
    *AXES,
    *LOADER_KEYS,
    K.img_per_s,
    K.img_per_s_spread,
    K.epoch_s,
    "epoch_img_per_s",
    K.step_ms,
    K.compile_s,
    K.compile_cold_s,
    K.compile_warm_s,
    K.warm_speedup,
    K.world_size,
    K.img_per_s_per_device,
    K.scaling_efficiency,
    K.gpu_util_pct,
    K.peak_mem_mib,
    K.mfu,
    K.achieved_tflops,
    "vs_cpu",
    "vs_eager",
    K.noisy,
    "epoch_noisy",
    K.throttled,
    "epoch_throttled",
)


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _number(value: Any) -> float | int | None:
    """A stored number, None for anything else: the records check their own kinds' numbers, but a kind this
    trainperf does not know keeps its values unchecked (``unknown``), and a table must not fail on them."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rounds(value: Any) -> list[float]:
    return [v for v in value if _number(v) is not None] if isinstance(value, list) else []


def benchmark_frame(run: Run) -> pd.DataFrame:
    """One row per benchmark: its identity, the case axes, the loader settings and the numeric results, read from
    the flat form of its record (so a kind this trainperf does not know shows what it stored too)."""
    rows = []
    for order, b in enumerate(run.benchmarks):
        flat = b.record.to_extra_info()
        rounds = _rounds(flat.get(K.img_per_s_rounds))
        rows.append(
            {
                "order": order,
                "name": b.name,
                "kind": b.kind,
                K.case_id: b.case_id,
                **{axis: _scalar(b.config.get(axis)) for axis in (*AXES, *LOADER_KEYS)},
                **{key: _number(flat.get(key)) for key in NUMBERS},
                K.noisy: flat.get(K.noisy),
                K.throttled: flat.get(K.throttled),
                "rounds_min": min(rounds) if rounds else None,
                "rounds_max": max(rounds) if rounds else None,
            }
        )
    frame = pd.DataFrame(rows)
    for key in (*NUMBERS, "rounds_min", "rounds_max"):
        frame[key] = frame[key].astype("float64")
    return frame


def _of_kind(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    return frame[frame["kind"] == kind].drop_duplicates(K.case_id, keep="last")


def _reference(frame: pd.DataFrame, on: list[str], name: str) -> pd.DataFrame:
    """``img_per_s`` of ``frame`` renamed to ``name``, one row per ``on`` key (the first in frame order)."""
    return frame[[*on, K.img_per_s]].drop_duplicates(on).rename(columns={K.img_per_s: name})


def _with_speedups(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``vs_cpu`` (over the matching CPU case) and ``vs_eager`` (a compiled case over its eager twin)."""
    known = table.dropna(subset=[*AXES, K.img_per_s])
    known = known[known[K.img_per_s] > 0]
    cpu = known[known["device"] == "cpu"]
    same_but_device = [a for a in AXES if a != "device"]
    plain_cpu = cpu[(cpu["compile"] == "eager") & (cpu["precision"] == "fp32") & (cpu["memory_format"] == "contiguous")]
    plain_cpu = plain_cpu.sort_values("optimizer", kind="stable")
    by_model = ["model", "batch_size"]
    same_but_compile = [a for a in AXES if a != "compile"]
    eager = known[known["compile"] == "eager"]
    out = (
        table.merge(_reference(cpu, same_but_device, "cpu_exact"), on=same_but_device, how="left")
        .merge(_reference(plain_cpu, [*by_model, "optimizer"], "cpu_same_opt"), on=[*by_model, "optimizer"], how="left")
        .merge(_reference(plain_cpu, by_model, "cpu_any"), on=by_model, how="left")
        .merge(_reference(eager, same_but_compile, "eager_img_per_s"), on=same_but_compile, how="left")
    )
    cpu_img = out["cpu_exact"].fillna(out["cpu_same_opt"]).fillna(out["cpu_any"])
    out["vs_cpu"] = (out[K.img_per_s] / cpu_img).where(out["device"] != "cpu")
    out["vs_eager"] = (out[K.img_per_s] / out["eager_img_per_s"]).where(out["compile"] != "eager")
    return out.drop(columns=["cpu_exact", "cpu_same_opt", "cpu_any", "eager_img_per_s"])


def training_frame(run: Run) -> pd.DataFrame:
    """One row per training case, in the run's order. The epoch columns come from ``test_epoch``, the others from
    ``test_train_step``; ``peak_mem_mib`` is the higher of the two."""
    frame = benchmark_frame(run)
    cases = frame[frame["kind"].isin(TRAINING_KINDS)].drop_duplicates(K.case_id)[[K.case_id, *AXES]]
    step_cols = [
        K.img_per_s,
        K.img_per_s_spread,
        K.step_ms,
        K.compile_s,
        K.gpu_util_pct,
        K.mfu,
        K.achieved_tflops,
        K.peak_mem_mib,
    ]
    step = _of_kind(frame, TrainStep.KIND)[[K.case_id, *step_cols, K.noisy, K.throttled, K.cudagraph_skips]]
    epoch = _of_kind(frame, Epoch.KIND)[[K.case_id, K.epoch_s, K.img_per_s, K.peak_mem_mib, K.noisy, K.throttled]]
    epoch = epoch.rename(columns={c: f"epoch_{c}" for c in (K.img_per_s, K.peak_mem_mib, K.noisy, K.throttled)})
    table = cases.merge(step, on=K.case_id, how="left").merge(epoch, on=K.case_id, how="left")
    table[K.peak_mem_mib] = table[[K.peak_mem_mib, "epoch_peak_mem_mib"]].max(axis=1)
    table["flags"] = [
        _flags(step_noisy=a, epoch_noisy=b, throttled=_true(c) or _true(d), cudagraph_skips=e)
        for a, b, c, d, e in zip(
            table[K.noisy],
            table["epoch_noisy"],
            table[K.throttled],
            table["epoch_throttled"],
            table[K.cudagraph_skips],
            strict=True,
        )
    ]
    return _with_speedups(table.drop(columns=["epoch_peak_mem_mib"]))


def _true(value: Any) -> bool:
    return not missing(value) and bool(value)


def _flags(
    *, step_noisy: Any = None, epoch_noisy: Any = None, throttled: Any = None, cudagraph_skips: Any = None
) -> str:
    named = (
        ("NOISY", step_noisy),
        ("NOISY(epoch)", epoch_noisy),
        ("THROTTLED", throttled),
        ("NO-CUDAGRAPHS", cudagraph_skips),
    )
    return ",".join(flag for flag, value in named if _true(value))


def _with_flags(table: pd.DataFrame) -> pd.DataFrame:
    flags = [_flags(step_noisy=n, throttled=t) for n, t in zip(table[K.noisy], table[K.throttled], strict=True)]
    return table.assign(flags=flags)


def dataloader_frame(run: Run) -> pd.DataFrame:
    return _with_flags(_of_kind(benchmark_frame(run), Loader.KIND))


def distributed_frame(run: Run) -> pd.DataFrame:
    """Data-parallel cases, each case's world sizes together in ascending order."""
    table = _of_kind(benchmark_frame(run), DdpStep.KIND)
    group = table[K.case_id].str.replace(r"-ws\d+(-nodes\d+)?$", "", regex=True)
    return _with_flags(table.assign(group=group).sort_values(["group", K.world_size], kind="stable"))


def compile_frame(run: Run) -> pd.DataFrame:
    table = _of_kind(benchmark_frame(run), CompileTime.KIND)
    computed = (table[K.compile_cold_s] / table[K.compile_warm_s]).where(table[K.compile_warm_s] > 0)
    return table.assign(warm_speedup=table[K.warm_speedup].fillna(computed))


def other_frame(run: Run) -> pd.DataFrame:
    """Benchmarks of a kind this report does not know yet (a newer suite): listed, not dropped."""
    frame = benchmark_frame(run)
    return frame[~frame["kind"].isin(OWN_SECTIONS)]


@dataclass(frozen=True)
class Section:
    name: str  # the CSV's section column; render.COLUMNS has its headers and formats
    title: str
    frame: pd.DataFrame


def sections(run: Run) -> list[Section]:
    """The non-empty tables of one run: training cases, DataLoader, compile time, distributed, unknown kinds."""
    found = [
        Section("training", "training", training_frame(run)),
        Section("dataloader", "dataloader", dataloader_frame(run)),
        Section("compile_time", "compile time", compile_frame(run)),
        Section("distributed", "distributed (DDP)", distributed_frame(run)),
        Section("other", "other benchmarks", other_frame(run)),
    ]
    return [s for s in found if not s.frame.empty]


def csv_frame(machines: Sequence[Machine]) -> pd.DataFrame:
    """Every section of every machine's latest run as one long table of raw numbers, one row per table row."""
    records = []
    for machine in machines:
        run = machine.latest
        for section in sections(run):
            for record in section.frame.to_dict("records"):
                name = record["kind"] if section.name == "other" else section.name
                records.append({**record, "machine_key": machine.label, "run": run.when.isoformat(), "section": name})
    frame = pd.DataFrame(records, columns=list(CSV_COLUMNS))
    for key in ("batch_size", "num_workers"):
        frame[key] = frame[key].astype("Int64")
    return frame
