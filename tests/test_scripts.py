"""The GPU check script and the back-to-back comparison, on a machine without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
GPU_CHECK = ROOT / "scripts" / "gpu-check.sh"
BACK_TO_BACK = ROOT / "scripts" / "back_to_back.py"


def _run_gpu_check(cwd: Path, out: str, phases: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PHASES": phases, "PYTHON": sys.executable}
    env.pop("TRAINPERF_REQUIRE_CUDA", None)
    return subprocess.run(
        ["bash", str(GPU_CHECK), out], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_gpu_check_without_a_gpu_fails_and_writes_its_log_under_a_relative_out(tmp_path):
    # Started from outside the repository with a relative OUT: the log lands there, and the run fails rather
    # than passing by skipping every CUDA case.
    done = _run_gpu_check(tmp_path, "rel/out", "steps")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    log = (tmp_path / "rel" / "out" / "gpu-check.log").read_text()
    assert "TRAINPERF_REQUIRE_CUDA is set but CUDA is not available" in log
    assert "phase 1-steps (cuda and train_step) exited 4" in log


def test_gpu_check_times_the_whole_matrix_when_every_phase_ran(tmp_path):
    done = _run_gpu_check(tmp_path, "out", "steps compile ddp pipeline")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR  # no GPU here: every phase refuses to pass by skipping
    table = (tmp_path / "out" / "table.txt").read_text()
    assert "== default CUDA matrix (steps, compile, ddp, pipeline; first runs): " in table
    assert "but a phase failed, see above" in table


def test_gpu_check_refuses_an_unknown_phase_before_running_anything(tmp_path):
    done = _run_gpu_check(tmp_path, "out", "steps warmup")
    assert done.returncode == 2
    assert "unknown phase 'warmup'" in done.stdout
    assert "phase 1-steps" not in done.stdout


def _run_doc(tmp_path: Path, name: str, values: dict[str, float | None]) -> Path:
    benchmarks = [{"name": n, "extra_info": {} if v is None else {"img_per_s": v}} for n, v in values.items()]
    path = tmp_path / name
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return path


def _back_to_back(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BACK_TO_BACK), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_back_to_back_reports_each_change_and_holds_the_target(tmp_path):
    first = _run_doc(tmp_path, "a.json", {"step[a]": 1000.0, "step[b]": 2000.0, "compile[c]": None})
    steady = _run_doc(tmp_path, "b.json", {"step[a]": 1010.0, "step[b]": 1990.0})
    done = _back_to_back(str(first), str(steady))
    assert done.returncode == 0, done.stderr
    assert "+1.00%" in done.stdout and "-0.50%" in done.stdout
    assert "largest change 1.00%: within the 2% target (2 benchmarks)" in done.stdout
    drifted = _run_doc(tmp_path, "c.json", {"step[a]": 1000.0, "step[b]": 1900.0})
    done = _back_to_back(str(first), str(drifted))
    assert done.returncode == 1
    assert "largest change 5.00%: ABOVE the 2% target" in done.stdout


def test_back_to_back_fails_when_a_benchmark_is_missing_from_one_run(tmp_path):
    first = _run_doc(tmp_path, "a.json", {"step[a]": 1000.0, "step[b]": 2000.0})
    lost = _run_doc(tmp_path, "b.json", {"step[a]": 1000.0})
    done = _back_to_back(str(first), str(lost))
    assert done.returncode == 1
    assert "largest change 0.00%: within" in done.stdout and f"only in {first}: step[b]" in done.stdout


def test_gpu_check_does_not_reuse_an_earlier_runs_json(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = [_run_doc(out, name, {"step[a]": 1000.0}) for name in ("1-steps.json", "3-ddp.json")]
    (out / "table.txt").write_text("an earlier table\n")
    done = _run_gpu_check(tmp_path, "out", "steps")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert not any(path.exists() for path in stale) and (out / "table.txt").read_text() == ""


def test_back_to_back_bad_input_is_one_line(tmp_path):
    good = _run_doc(tmp_path, "a.json", {"step[a]": 1000.0})
    other = _run_doc(tmp_path, "b.json", {"step[z]": 1000.0})
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    done = _back_to_back(str(good), str(broken))
    assert done.returncode == 2 and f"{broken}: cannot read a JSON document" in done.stderr
    done = _back_to_back(str(good), str(other))
    assert done.returncode == 2 and "share no throughput benchmark" in done.stderr
    assert "Traceback" not in done.stderr
