"""The GPU check's last table: every column a first look at a GPU needs, from the phases' saved runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from trainperf import results
from trainperf.telemetry import TelemetrySummary

ROOT = Path(__file__).resolve().parent.parent
EAGER = "cuda-eager-fp32-contiguous-resnet18-b128-foreach"
PEAK = "cuda-reduce_overhead-bf16-channels_last-resnet18_cifar-b1024-fused"


def _telemetry(util: float) -> TelemetrySummary:
    return TelemetrySummary(
        samples=10, gpu_util_pct=util, gpu_util_pct_mean=util, mem_util_pct=None, gpu_mem_used_mib=1000.0,
        sm_clock_mhz=1980.0, power_w=650.0, temperature_c=60.0, throttled=False, throttle_reasons=[],
        rss_peak_mib=None,
    )  # fmt: skip


def _step(case_id: str, img_per_s: float, config: dict, mfu: float | None = None) -> results.TrainStep:
    return results.TrainStep(
        identity=results.Identity(case_id=case_id, config=config),
        throughput=results.Rates(img_per_s=img_per_s, img_per_s_rounds=(img_per_s,), img_per_s_spread=0.012),
        health=results.Health(telemetry=_telemetry(23.0)),
        utilisation=results.Utilisation(mfu=mfu),
    )


def _save(path: Path, *records: results.Result) -> Path:
    doc = {"benchmarks": [{"name": f"test_x[{r.identity.case_id}]", "extra_info": r.to_extra_info()} for r in records]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_table.py"), *args], capture_output=True, text=True, check=False
    )


def test_the_table_joins_steps_second_run_and_compile_times(tmp_path):
    eager = {"compile": "eager", "batch_size": 128}
    graphs = {"compile": "reduce-overhead", "batch_size": 1024}
    first = _save(tmp_path / "1.json", _step(EAGER, 13000.0, eager, 0.021), _step(PEAK, 90000.0, graphs, 0.3))
    second = _save(tmp_path / "2.json", _step(EAGER, 12870.0, eager), _step(PEAK, 91800.0, graphs))
    compiled = _save(
        tmp_path / "3.json",
        results.CompileTime(identity=results.Identity(case_id=PEAK), compile_cold_s=61.5, compile_warm_s=20.25),
    )
    done = _run("--steps", str(first), str(second), "--compile", str(compiled))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["case", "img/s", "spread", "MFU", "util", "W", "MHz", "compile", "c/w", "s", "b2b"]
    assert lines[1].split() == [EAGER, "13,000", "1.2%", "2.1%", "23%", "650", "1,980", "-", "-1.0%"]
    assert lines[2].split() == [PEAK, "90,000", "1.2%", "30.0%", "23%", "650", "1,980", "61.5/20.2", "+2.0%"]
    assert lines[3] == f"peak case {PEAK}: 90,000 img/s, 90% of the 100,000 target"


def test_a_file_that_is_not_a_run_is_bad_input(tmp_path):
    (tmp_path / "x.json").write_text("{}", encoding="utf-8")
    done = _run("--steps", str(tmp_path / "x.json"))
    assert done.returncode == 2 and "x.json: not a trainperf pytest-benchmark JSON file" in done.stderr
