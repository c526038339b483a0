"""``trainperf report``: tables and charts of saved pytest-benchmark runs of this suite.

Reads ``--benchmark-json`` files, autosaves and whole ``.benchmarks/`` histories. Runs from different machines are
never mixed: each machine gets its own section. Pure logic plus file I/O (no pytest); the charts live in
:mod:`trainperf.charts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from trainperf.cases import AXES
from trainperf.runs import RunError, read_document

FORMATS = ("text", "markdown", "csv")
NUMBERS = (
    "img_per_s",
    "img_per_s_spread",
    "step_ms",
    "epoch_s",
    "compile_s",
    "compile_cold_s",
    "compile_warm_s",
    "warm_speedup",
    "peak_mem_mib",
    "gpu_util_pct",
    "mfu",
    "achieved_tflops",
    "world_size",
    "img_per_s_per_device",
    "scaling_efficiency",
    "cudagraph_skips",
)
LOADER_KEYS = ("num_workers", "pin_memory", "resident")
TRAINING_KINDS = ("train_step", "epoch")
OWN_SECTIONS = ("train_step", "epoch", "dataloader", "compile_time", "ddp_train_step")


class ReportError(Exception):
    """An input the report cannot use; the message is ``PATH: problem``."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: str
    case_id: str
    config: dict[str, Any]
    extra: dict[str, Any]


@dataclass(frozen=True)
class Run:
    """One pytest-benchmark JSON document: one run of the suite on one machine."""

    path: Path
    when: datetime
    info: dict[str, Any]  # machine_info["trainperf"]
    key: str  # its machine key
    commit: dict[str, Any]
    benchmarks: tuple[Benchmark, ...]

    @property
    def machine_identity(self) -> tuple[str, str, str]:
        return self.key, str(self.info.get("gpu_name") or ""), str(self.info.get("cpu_model") or "")


@dataclass(frozen=True)
class Machine:
    """The runs of one machine, oldest first. ``label`` is the machine key, made unique when two machines share a
    key (same GPU and versions, different CPU)."""

    key: str
    label: str
    runs: tuple[Run, ...]

    @property
    def latest(self) -> Run:
        return self.runs[-1]


# --- reading ---------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _benchmark(raw: Any, index: int, path: Path) -> Benchmark | None:
    if not isinstance(raw, dict):
        raise ReportError(path, f"benchmarks[{index}] is not an object")
    extra = raw.get("extra_info")
    if not isinstance(extra, dict) or "trainperf_kind" not in extra:
        return None  # another suite's benchmark in the same file
    name = raw.get("name") if isinstance(raw.get("name"), str) else f"benchmarks[{index}]"
    kind, case_id, config = extra["trainperf_kind"], extra.get("case_id", raw.get("param")), extra.get("config", {})
    if not isinstance(kind, str) or not isinstance(case_id, str) or not isinstance(config, dict):
        raise ReportError(path, f"{name}: trainperf_kind and case_id must be strings and config an object")
    for key in NUMBERS:
        if extra.get(key) is not None and not _is_number(extra[key]):
            raise ReportError(path, f"{name}: {key} must be a number or null, got {extra[key]!r}")
    rounds = extra.get("img_per_s_rounds")
    if rounds is not None and not (isinstance(rounds, list) and all(_is_number(r) for r in rounds)):
        raise ReportError(path, f"{name}: img_per_s_rounds must be a list of numbers, got {rounds!r}")
    return Benchmark(name, kind, case_id, config, extra)


def _when(value: Any, path: Path) -> datetime:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(path, f"no valid 'datetime' (got {value!r}); pytest-benchmark writes one") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_run(doc: Any, path: Path) -> Run:
    """Validate a decoded pytest-benchmark document; every problem is a ReportError naming ``path``.

    The document itself is checked as the gate and promotion check it (``runs.read_document``); the report then
    keeps every trainperf benchmark, compile time and loaders included, and needs the run's date.
    """
    try:
        document = read_document(doc, str(path))
    except RunError as exc:
        raise ReportError(path, str(exc).removeprefix(f"{path}: ")) from None
    found = (_benchmark(raw, i, path) for i, raw in enumerate(document.benchmarks))
    benchmarks = tuple(b for b in found if b is not None)
    if not benchmarks:
        raise ReportError(path, "no trainperf benchmarks (no 'trainperf_kind' in any extra_info)")
    return Run(path, _when(doc.get("datetime"), path), document.info, document.key, document.commit, benchmarks)


def load_run(path: Path) -> Run:
    """Read one pytest-benchmark JSON file written by this suite."""
    from trainperf.baseline import BaselineError, read_json

    try:
        doc = read_json(path, what="file or directory")
    except BaselineError as exc:
        raise ReportError(path, str(exc).removeprefix(f"{path}: ")) from None
    return parse_run(doc, path)


def _json_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise ReportError(path, "no *.json files in this directory")
        return files
    if not path.exists():
        raise ReportError(path, "no such file or directory")
    return [path]


def load_runs(paths: Iterable[Path]) -> list[Run]:
    """Every run in ``paths`` (files, or directories searched for ``*.json``), oldest first by ``datetime``."""
    runs: list[Run] = []
    seen: set[Path] = set()
    for path in paths:
        for file in _json_files(path):
            if file.resolve() not in seen:
                seen.add(file.resolve())
                runs.append(load_run(file))
    return sorted(runs, key=lambda run: run.when)


def group_by_machine(runs: Sequence[Run]) -> list[Machine]:
    """The runs split per machine, sorted by label; within a machine, in the order given."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault(run.machine_identity, []).append(run)
    keys = [ident[0] for ident in groups]
    machines = []
    for ident, members in groups.items():
        key, gpu, cpu = ident
        label = key if keys.count(key) == 1 else f"{key} (GPU {gpu or 'none'}, CPU {cpu or 'unknown'})"
        machines.append(Machine(key, label, tuple(members)))
    return sorted(machines, key=lambda m: m.label)


# --- tables ----------------------------------------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def benchmark_frame(run: Run) -> pd.DataFrame:
    """One row per benchmark: its identity, the case axes, the loader settings and the numeric results."""
    rows = []
    for order, b in enumerate(run.benchmarks):
        rounds = b.extra.get("img_per_s_rounds") or []
        rows.append(
            {
                "order": order,
                "name": b.name,
                "kind": b.kind,
                "case_id": b.case_id,
                **{axis: _scalar(b.config.get(axis)) for axis in (*AXES, *LOADER_KEYS)},
                **{key: b.extra.get(key) for key in NUMBERS},
                "noisy": b.extra.get("noisy"),
                "throttled": b.extra.get("throttled"),
                "rounds_min": min(rounds) if rounds else None,
                "rounds_max": max(rounds) if rounds else None,
            }
        )
    frame = pd.DataFrame(rows)
    for key in (*NUMBERS, "rounds_min", "rounds_max"):
        frame[key] = frame[key].astype("float64")
    return frame


def _of_kind(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    return frame[frame["kind"] == kind].drop_duplicates("case_id", keep="last")


def _reference(frame: pd.DataFrame, on: list[str], name: str) -> pd.DataFrame:
    """``img_per_s`` of ``frame`` renamed to ``name``, one row per ``on`` key (the first in frame order)."""
    return frame[[*on, "img_per_s"]].drop_duplicates(on).rename(columns={"img_per_s": name})


def _with_speedups(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``vs_cpu`` (over the matching CPU case) and ``vs_eager`` (a compiled case over its eager twin)."""
    known = table.dropna(subset=[*AXES, "img_per_s"])
    known = known[known["img_per_s"] > 0]
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
    out["vs_cpu"] = (out["img_per_s"] / cpu_img).where(out["device"] != "cpu")
    out["vs_eager"] = (out["img_per_s"] / out["eager_img_per_s"]).where(out["compile"] != "eager")
    return out.drop(columns=["cpu_exact", "cpu_same_opt", "cpu_any", "eager_img_per_s"])


def training_frame(run: Run) -> pd.DataFrame:
    """One row per training case, in the run's order. The epoch columns come from ``test_epoch``, the others from
    ``test_train_step``; ``peak_mem_mib`` is the higher of the two."""
    frame = benchmark_frame(run)
    cases = frame[frame["kind"].isin(TRAINING_KINDS)].drop_duplicates("case_id")[["case_id", *AXES]]
    step_cols = [
        "img_per_s",
        "img_per_s_spread",
        "step_ms",
        "compile_s",
        "gpu_util_pct",
        "mfu",
        "achieved_tflops",
        "peak_mem_mib",
    ]
    step = _of_kind(frame, "train_step")[["case_id", *step_cols, "noisy", "throttled", "cudagraph_skips"]]
    epoch = _of_kind(frame, "epoch")[["case_id", "epoch_s", "img_per_s", "peak_mem_mib", "noisy", "throttled"]]
    epoch = epoch.rename(columns={c: f"epoch_{c}" for c in ("img_per_s", "peak_mem_mib", "noisy", "throttled")})
    table = cases.merge(step, on="case_id", how="left").merge(epoch, on="case_id", how="left")
    table["peak_mem_mib"] = table[["peak_mem_mib", "epoch_peak_mem_mib"]].max(axis=1)
    table["flags"] = [
        _flags(step_noisy=a, epoch_noisy=b, throttled=_true(c) or _true(d), cudagraph_skips=e)
        for a, b, c, d, e in zip(
            table["noisy"],
            table["epoch_noisy"],
            table["throttled"],
            table["epoch_throttled"],
            table["cudagraph_skips"],
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
    flags = [_flags(step_noisy=n, throttled=t) for n, t in zip(table["noisy"], table["throttled"], strict=True)]
    return table.assign(flags=flags)


def dataloader_frame(run: Run) -> pd.DataFrame:
    return _with_flags(_of_kind(benchmark_frame(run), "dataloader"))


def distributed_frame(run: Run) -> pd.DataFrame:
    """Data-parallel cases, each case's world sizes together in ascending order."""
    table = _of_kind(benchmark_frame(run), "ddp_train_step")
    group = table["case_id"].str.replace(r"-ws\d+(-nodes\d+)?$", "", regex=True)
    return _with_flags(table.assign(group=group).sort_values(["group", "world_size"], kind="stable"))


def compile_frame(run: Run) -> pd.DataFrame:
    table = _of_kind(benchmark_frame(run), "compile_time")
    computed = (table["compile_cold_s"] / table["compile_warm_s"]).where(table["compile_warm_s"] > 0)
    return table.assign(warm_speedup=table["warm_speedup"].fillna(computed))


def other_frame(run: Run) -> pd.DataFrame:
    """Benchmarks of a kind this report does not know yet (a newer suite): listed, not dropped."""
    frame = benchmark_frame(run)
    return frame[~frame["kind"].isin(OWN_SECTIONS)]


# --- formatting ------------------------------------------------------------------------------------------------

Formatter = Callable[[Any], str]


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


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
    ("configuration", "case_id", str),
    ("epoch time (s)", "epoch_s", _fixed(2)),
    ("img/s", "img_per_s", _fixed(1)),
    ("GPU util %", "gpu_util_pct", _fixed(0)),
    ("epoch img/s", "epoch_img_per_s", _fixed(1)),
    ("step ms", "step_ms", _fixed(2)),
    ("compile s", "compile_s", _fixed(2)),
    ("peak MiB", "peak_mem_mib", _fixed(0)),
    ("MFU %", "mfu", _percent_of_fraction),
    ("vs CPU", "vs_cpu", _times),
    ("vs eager", "vs_eager", _times),
    ("flags", "flags", str),
)
LOADER_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("loader", "case_id", str),
    ("img/s", "img_per_s", _fixed(1)),
    ("spread", "img_per_s_spread", _spread),
    ("flags", "flags", str),
)
DISTRIBUTED_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("configuration", "case_id", str),
    ("img/s", "img_per_s", _fixed(1)),
    ("img/s per device", "img_per_s_per_device", _fixed(1)),
    ("scaling %", "scaling_efficiency", _percent_of_fraction),
    ("step ms", "step_ms", _fixed(2)),
    ("spread", "img_per_s_spread", _spread),
    ("flags", "flags", str),
)
COMPILE_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("configuration", "case_id", str),
    ("cold s", "compile_cold_s", _fixed(2)),
    ("warm s", "compile_warm_s", _fixed(2)),
    ("cold/warm", "warm_speedup", _times),
)
OTHER_COLUMNS: tuple[tuple[str, str, Formatter], ...] = (
    ("benchmark", "name", str),
    ("kind", "kind", str),
    ("img/s", "img_per_s", _fixed(1)),
)
CSV_COLUMNS = (
    "machine_key",
    "run",
    "section",
    "case_id",
    *AXES,
    *LOADER_KEYS,
    "img_per_s",
    "img_per_s_spread",
    "epoch_s",
    "epoch_img_per_s",
    "step_ms",
    "compile_s",
    "compile_cold_s",
    "compile_warm_s",
    "warm_speedup",
    "world_size",
    "img_per_s_per_device",
    "scaling_efficiency",
    "gpu_util_pct",
    "peak_mem_mib",
    "mfu",
    "achieved_tflops",
    "vs_cpu",
    "vs_eager",
    "noisy",
    "epoch_noisy",
    "throttled",
    "epoch_throttled",
)


@dataclass(frozen=True)
class Section:
    name: str  # the CSV's section column
    title: str
    frame: pd.DataFrame
    columns: tuple[tuple[str, str, Formatter], ...]

    def headers(self) -> list[str]:
        return [header for header, _, _ in self.columns]

    def left_aligned(self) -> list[bool]:
        return [fmt is str for _, _, fmt in self.columns]

    def cells(self) -> list[list[str]]:
        records = self.frame.to_dict("records")
        return [["-" if missing(r[col]) else fmt(r[col]) for _, col, fmt in self.columns] for r in records]


def sections(run: Run) -> list[Section]:
    """The non-empty tables of one run: training cases, DataLoader, compile time, distributed, unknown kinds."""
    found = [
        Section("training", "training", training_frame(run), TRAINING_COLUMNS),
        Section("dataloader", "dataloader", dataloader_frame(run), LOADER_COLUMNS),
        Section("compile_time", "compile time", compile_frame(run), COMPILE_COLUMNS),
        Section("distributed", "distributed (DDP)", distributed_frame(run), DISTRIBUTED_COLUMNS),
        Section("other", "other benchmarks", other_frame(run), OTHER_COLUMNS),
    ]
    return [s for s in found if not s.frame.empty]


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


def _text_table(section: Section) -> list[str]:
    headers, cells, left = section.headers(), section.cells(), section.left_aligned()
    widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        padded = (c.ljust(w) if lft else c.rjust(w) for c, w, lft in zip(row, widths, left, strict=True))
        return "  ".join(padded).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(row) for row in cells)]


def _markdown_table(section: Section) -> list[str]:
    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    rule = "|" + "|".join(":---" if lft else "---:" for lft in section.left_aligned()) + "|"
    return [line(section.headers()), rule, *(line(row) for row in section.cells())]


def _preamble(machines: Sequence[Machine]) -> list[str]:
    if len(machines) < 2:
        return []
    return [f"{len(machines)} machines: each has its own section; their numbers are not comparable.", ""]


def render_text(machines: Sequence[Machine]) -> str:
    out = _preamble(machines)
    for machine in machines:
        out += [f"== machine {machine.label} ==", describe_machine(machine.latest.info), describe_run(machine)]
        for section in sections(machine.latest):
            out += ["", section.title, *_text_table(section)]
        out.append("")
    return "\n".join(out)


def render_markdown(machines: Sequence[Machine]) -> str:
    out = _preamble(machines)
    for machine in machines:
        out += [f"## trainperf: machine `{machine.label}`", ""]
        out += [f"{describe_machine(machine.latest.info)}. {describe_run(machine)}."]
        for section in sections(machine.latest):
            out += ["", f"### {section.title}", "", *_markdown_table(section)]
        out.append("")
    return "\n".join(out)


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


def render_csv(machines: Sequence[Machine]) -> str:
    return csv_frame(machines).to_csv(index=False, lineterminator="\n")


def render(machines: Sequence[Machine], fmt: str = "text") -> str:
    """The report of each machine's latest run in ``fmt`` (one of FORMATS)."""
    renderers = {"text": render_text, "markdown": render_markdown, "csv": render_csv}
    return renderers[fmt](machines)
