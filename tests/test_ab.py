"""``trainperf ab``: the running order, the paired decision, verdict files ``trainperf report`` reads, and one
interleaved A/B of the real suite with a tiny model whose side B is slowed down on purpose."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from conftest import PERF_DIR, TINY_MODEL, TINY_OPTIONS
from trainperf import cli
from trainperf.gate import ab
from trainperf.gate import verdict_report as vr
from trainperf.gate.runs import SavedRun, parse_run
from trainperf.gate.verdict import OK, REGRESSED, compare

STEP = "test_train_step[cpu-eager-fp32-contiguous-resnet18-b128-foreach]"
LOADER = "test_dataloader[cpu-w0-nopin]"
KEY = "cpu-amd-epyc-2c-torch2.14"
MACHINE = {"torch": "2.14.1", "cpu_model": "AMD EPYC", "cpu_count": 2, "cuda_available": False}
# What the machine does to both sides of a pair alike: one pair 20% slow, another 15% fast.
DRIFT = (1.00, 0.80, 1.15, 0.90)


def saved_run(medians: dict[str, float], source: str) -> SavedRun:
    """A run as ``parse_run`` reads it from the suite's JSON: per benchmark its median and three close rounds."""
    doc = {
        "machine_info": {"trainperf": MACHINE},
        "benchmarks": [
            {
                "name": name,
                "extra_info": {
                    "trainperf_kind": "train_step",
                    "case_id": name.split("[")[-1].rstrip("]"),
                    "img_per_s": value,
                    "img_per_s_rounds": [value * 0.99, value, value * 1.01],
                    "img_per_s_spread": 0.01,
                },
            }
            for name, value in medians.items()
        ],
        "datetime": "2026-11-28T18:59:37+00:00",
    }
    return parse_run(doc, source)


def sides(a: dict[str, float], b: dict[str, float], drift: tuple[float, ...] = DRIFT) -> tuple[list, list]:
    """Runs of A and B, pair i scaled by ``drift[i]`` on both sides."""
    a_runs = [saved_run({n: v * d for n, v in a.items()}, f"A-{i}.json") for i, d in enumerate(drift)]
    b_runs = [saved_run({n: v * d for n, v in b.items()}, f"B-{i}.json") for i, d in enumerate(drift)]
    return a_runs, b_runs


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def trainperf(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------ order and decision


def test_pairs_alternate_which_side_runs_first() -> None:
    assert ab.order(3) == [(0, "A"), (0, "B"), (1, "B"), (1, "A"), (2, "A"), (2, "B")]
    assert ab.order(1) == [(0, "A"), (0, "B")]


def test_b_slower_in_every_pair_under_a_shared_drift_is_regressed() -> None:
    a_runs, b_runs = sides({STEP: 600.0}, {STEP: 540.0})
    (row,) = ab.decide(a_runs, b_runs)
    assert row.name == STEP
    assert row.verdict == REGRESSED
    assert row.change == pytest.approx(-0.10)
    assert row.runs == (4, 4)
    assert row.against == "A/B x4"
    assert row.threshold == pytest.approx(0.05, abs=0.002)  # the pairs agree: the tolerance sets the threshold
    # The same numbers taken as two unpaired sets: the drift between pairs hides the 10% drop.
    a_values = [r.results[STEP].img_per_s for r in a_runs]
    b_values = [r.results[STEP].img_per_s for r in b_runs]
    assert compare(STEP, a_values, b_values).verdict != REGRESSED


def test_equal_sides_are_ok() -> None:
    same = {STEP: 600.0, LOADER: 6500.0}
    a_runs, b_runs = sides(same, same)
    rows = ab.decide(a_runs, b_runs)
    assert [(r.name, r.verdict) for r in rows] == [(LOADER, OK), (STEP, OK)]
    assert all(r.change == pytest.approx(0.0, abs=1e-12) for r in rows)


def test_a_benchmark_one_side_did_not_measure_in_every_pair_is_left_out() -> None:
    a_runs, b_runs = sides({STEP: 600.0, LOADER: 6500.0}, {STEP: 540.0})
    assert [r.name for r in ab.decide(a_runs, b_runs)] == [STEP]
    a_runs, b_runs = sides({STEP: 600.0, LOADER: 6500.0}, {STEP: 600.0, LOADER: 6500.0})
    b_runs[2] = saved_run({STEP: 600.0 * DRIFT[2]}, "B-2.json")  # one pair of B lacks the loader
    assert [r.name for r in ab.decide(a_runs, b_runs)] == [STEP]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_a_revision_side_runs_in_a_worktree_removed_afterwards(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "version.txt").write_text("committed\n", encoding="utf-8")
    _git(repo, "add", "version.txt")
    _git(repo, "commit", "-q", "-m", "one")
    (repo / "version.txt").write_text("edited\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    with ExitStack() as stack:
        assert ab.checkout(stack, repo, ab.Side("A"), work) == repo  # no revision: the working tree itself
        where = ab.checkout(stack, repo, ab.Side("B", rev="HEAD"), work)
        assert where == work / "side-B"
        assert (where / "version.txt").read_text(encoding="utf-8") == "committed\n"
    assert not where.exists()
    assert _git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


# --------------------------------------------------------------------------------------------- bad input


def test_a_revision_outside_a_git_repository_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    code, _, err = trainperf(capsys, "ab", "--repo", tmp_path, "--b-rev", "HEAD", "--", "-m", "cpu")
    assert code == 2
    line = one_error_line(err)
    assert line.startswith("trainperf ab: git rev-parse --verify HEAD^{commit}: "), line
    assert "not a git repository" in line


def test_an_interpreter_that_cannot_start_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no-venv" / "bin" / "python"
    code, out, err = trainperf(capsys, "ab", "--repo", tmp_path, "--a-python", missing, "--pairs", "1")
    assert code == 2
    assert out == f"trainperf ab: A: working tree, python {missing}; B: working tree; 1 pairs (AB, BA, ...)\n"
    assert one_error_line(err).startswith(f"trainperf ab: side A: cannot start {missing}: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--pairs", "0"), "expected a positive integer, got '0'"),
        (("--tolerance", "5"), "expected a fraction between 0 and 1"),
        (("--alpha", "0"), "expected a fraction between 0 and 1"),
    ],
)
def test_a_bad_option_value_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: tuple[str, ...], message: str
) -> None:
    code, out, err = trainperf(capsys, "ab", "--repo", tmp_path, *args)
    assert code == 2
    assert out == ""
    assert message in err


# ---------------------------------------------------------------------------------------- verdict files


def verdict_file(tmp_path: Path, **changes: Any) -> Path:
    a_runs, b_runs = sides({STEP: 600.0, LOADER: 6500.0}, {STEP: 540.0, LOADER: 6500.0})
    rows = ab.decide(a_runs, b_runs)
    doc = vr.document(rows, mode="ab", machine_key=KEY, exit_code=1, notes=["A: working tree; B: rev abc1234; 93 s"])
    doc.update(changes)
    path = tmp_path / "verdict.json"
    vr.write(path, doc)
    return path


def test_report_prints_the_verdict_table_of_a_verdict_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = verdict_file(tmp_path)
    code, out, err = trainperf(capsys, "report", path)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{path}: ab verdicts, machine key {KEY}, exit 1"
    assert lines[1].split()[:3] == ["#", "ref", "img/s"]
    assert lines[1].split()[-1] == "verdict"
    label = {line.split()[1].removesuffix(":"): line.split()[0] for line in lines if " test_" in line}
    assert "against A/B x4:" in lines and f"{label[STEP]}  {STEP}: {REGRESSED}" in lines
    step = next(line for line in lines if line.split()[:1] == [label[STEP]])  # the table row comes first
    drift = math.exp(statistics.fmean(math.log(d) for d in DRIFT))  # the references are geometric means
    assert step.split()[:4] == [label[STEP], f"{600 * drift:,.1f}", f"{540 * drift:,.1f}", "-10.0%"]
    assert step.split()[-2:] == ["4/4", REGRESSED]
    loader = next(line for line in lines if line.split()[:1] == [label[LOADER]])
    assert loader.split()[-2:] == ["4/4", OK]
    assert "A: working tree; B: rev abc1234; 93 s" in lines
    assert err == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": 99}, "verdict schema_version 99; this trainperf reads 1 (upgrade it)"),
        ({"comparisons": [{"name": STEP, "speed": "fast"}]}, "'comparisons' must be a list of verdict objects"),
        ({"comparisons": [{"name": STEP}]}, "a comparison is malformed"),
    ],
    ids=["newer schema", "unknown field", "no verdict"],
)
def test_a_verdict_file_report_cannot_read_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, changes: dict[str, Any], message: str
) -> None:
    path = verdict_file(tmp_path, **changes)
    code, out, err = trainperf(capsys, "report", path)
    assert code == 2
    assert out == ""
    assert one_error_line(err).startswith(f"trainperf report: {path}: {message}")


# ------------------------------------------------------------------------------------------------ end to end

SLOW_PLUGIN = '''
"""Side B's plugin: every training step takes about twice as long (the step, then busy-waiting as long as the
fastest step took, so another process's time slice is not doubled too)."""

import time

from trainperf.measurement import training

_step = training.Trainer.step
_fastest = float("inf")


def _slow_step(self, x, y):
    global _fastest
    start = time.perf_counter()
    loss = _step(self, x, y)
    _fastest = min(_fastest, time.perf_counter() - start)
    end = time.perf_counter() + _fastest
    while time.perf_counter() < end:
        pass
    return loss


training.Trainer.step = _slow_step
'''
# Five windows of 200 steps (0.1 s each at full speed): a burst of another process's work moves a window,
# not the run's median. Three pairs, not two: when two pairs' ratios differ by more than the prior noise, the
# bound has one degree of freedom (t = 15.9 at alpha 2%) and a 2x slowdown came out "inconclusive" in 2 of 6
# tries on the shared 2-core machine; three pairs caught it every time.
WINDOWS = ("--trainperf-warmup-steps=5", "--trainperf-rounds=5", "--trainperf-steps=200")
TINY_STEP = "test_train_step[cpu-eager-fp32-contiguous-tinymodel.tiny-b32-foreach]"


def test_ab_of_a_slowed_down_side_b_regresses(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sides run `python -m pytest` in this directory: the model and the plugin are imported from there.
    (tmp_path / "test_training.py").write_text(
        (PERF_DIR / "test_training.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "tinymodel.py").write_text(TINY_MODEL, encoding="utf-8")
    (tmp_path / "slowplugin.py").write_text(SLOW_PLUGIN, encoding="utf-8")
    # Two OpenMP threads per side on a 2-core machine other jobs share made some runs 100x slower; one is steady.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    suite = ["--", "-m", "cpu and train_step", *TINY_OPTIONS, *WINDOWS]
    verdicts = tmp_path / "ab.json"

    code, out, err = trainperf(
        capsys, "ab", "--repo", tmp_path, "--pairs", "3", "--b-args", "-p slowplugin", "--json", verdicts, *suite
    )
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[0] == "trainperf ab: A: working tree; B: working tree, args -p slowplugin; 3 pairs (AB, BA, ...)"
    progress = [line.removeprefix("trainperf ab: ").split(":")[0] for line in lines[1:7]]
    assert progress == [
        "1/6 pair 1 side A",
        "2/6 pair 1 side B",
        "3/6 pair 2 side B",
        "4/6 pair 2 side A",
        "5/6 pair 3 side A",
        "6/6 pair 3 side B",
    ]
    assert any(line.startswith(f"REGRESSED: {TINY_STEP}: A/B x3 ") for line in lines), out
    assert lines[-1].startswith("trainperf ab: REGRESSED (")
    assert err == ""
    doc = json.loads(verdicts.read_text(encoding="utf-8"))
    (row,) = doc["comparisons"]
    assert (doc["mode"], doc["exit_code"], row["name"], row["verdict"]) == ("ab", 1, TINY_STEP, REGRESSED)
    assert row["change"] < -0.3  # about -50%: each step of B takes twice as long
    code, out, err = trainperf(capsys, "report", verdicts)
    assert code == 0, err
    assert REGRESSED in out and TINY_STEP in out

    # Without the plugin both sides are the same code; a tiny model is too noisy to promise "ok" every time.
    code, out, err = trainperf(capsys, "ab", "--repo", tmp_path, "--pairs", "1", *suite)
    assert code in (0, 1), out + err
    assert err == ""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "ref", "img/s"])
    row_cells = lines[header + 2].split()  # under the header's rule
    assert row_cells[0] == "#1" and "1/1" in row_cells
    assert "against A/B x1:" in lines and any(line.startswith(f"#1  {TINY_STEP}: ") for line in lines)
    assert lines[-1].startswith("trainperf ab: " + ("REGRESSED (" if code else "no regression ("))
