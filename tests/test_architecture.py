"""The architecture as code: import-linter contracts hold and catch a violation, every module is placed in a
layer, the pytest plugin imports nothing heavy, and listing the benchmarks touches no file, data or GPU."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cifar_files import write_cifar10

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "trainperf"
LINT_IMPORTS = shutil.which("lint-imports")
# The pytest edge and the command line: the modules allowed to import pytest or to sit above the core.
EDGE = {"cli", "plugin", "pytest_edge"}
needs_lint_imports = pytest.mark.skipif(
    LINT_IMPORTS is None, reason="import-linter is a test dependency: install .[test]"
)


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _modules() -> set[str]:
    """Top-level modules and subpackages of trainperf."""
    found = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return found | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def test_every_module_is_either_core_or_edge():
    core = {
        m.removeprefix("trainperf.")
        for m in next(c for c in _contracts() if c["id"] == "pytest-free-core")["source_modules"]
    }
    assert core & EDGE == set()
    assert _modules() - core - EDGE == set(), "a new module must be placed: core (pyproject) or edge (this test)"
    assert core - _modules() == set(), "the core list names a module that does not exist"


def test_every_part_says_what_it_is():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 20, f"{init.parent.name}: a package says in its docstring what it holds"


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS is not None
    env = {"PYTHONPATH": str(pythonpath), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@needs_lint_imports
def test_the_import_contracts_hold():
    done = _lint(ROOT, ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"Contracts: {len(_contracts())} kept, 0 broken", done.stdout)


@needs_lint_imports
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("gate/verdict.py", "import pytest", "the core never imports pytest"),
        ("settings.py", "from trainperf.pytest_edge import runner", "the core never imports"),
        ("pytest_edge/runner.py", "from trainperf import plugin", "the pytest edge sits on the core"),
        ("results/records.py", "from trainperf.measurement import cases", "the core's parts on each other"),
        ("gate/verdict.py", "from trainperf.gate import baseline", "the verdict policy imports nothing"),
    ],
)
def test_a_deliberate_violation_breaks_a_contract(tmp_path, module, line, contract):
    shutil.copytree(PACKAGE, tmp_path / "src" / "trainperf")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "src" / "trainperf" / module
    target.write_text(target.read_text() + f"\n\ndef _violation() -> None:\n    {line}  # noqa\n")
    done = _lint(tmp_path, tmp_path / "src")
    assert done.returncode == 1, done.stdout
    broken = " ".join(done.stdout.partition("Broken contracts")[2].split())
    assert contract in broken, done.stdout


HEAVY = ("torch", "pandas", "matplotlib", "pynvml", "numpy", "scipy")


def test_importing_the_plugin_imports_nothing_heavy():
    code = f"import sys, trainperf.plugin\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


SPY = """
import builtins, io, os, sys
opened = []
real_open, real_io_open = builtins.open, io.open
def spy(file, *args, **kwargs):
    opened.append(os.fspath(file) if isinstance(file, (str, bytes, os.PathLike)) else file)
    return real_open(file, *args, **kwargs)
builtins.open = io.open = spy
nvml_calls = []
try:  # importing pynvml is not a call (torch imports it); initialising NVML is
    import pynvml
    for name in ("nvmlInit", "nvmlInitWithFlags", "nvmlInit_v2"):
        if hasattr(pynvml, name):
            real = getattr(pynvml, name)
            setattr(pynvml, name, lambda *a, _real=real, _name=name, **k: (nvml_calls.append(_name), _real(*a, **k))[1])
except ImportError:
    pass

class Report:
    def pytest_unconfigure(self, config):
        print("OPENED", [p for p in opened if isinstance(p, str)])
        print("NVML", nvml_calls)

import pytest
sys.exit(pytest.main(sys.argv[1:], plugins=[Report()]))
"""


def test_listing_the_benchmarks_reads_no_baseline_or_data_and_asks_no_gpu(tmp_path):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    for name in ("cpu.json", "cuda.json"):
        (baselines / name).write_text("{not a baseline")
    data = write_cifar10(tmp_path / "cifar")  # the options check its layout; no batch file may be read
    args = ["perf/", "--collect-only", "-q", "-p", "no:randomly", f"--trainperf-baseline-dir={baselines}"]
    args.append(f"--trainperf-data-dir={data}")
    done = subprocess.run(
        [sys.executable, "-c", SPY, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_train_step[" in done.stdout
    opened = next(line for line in done.stdout.splitlines() if line.startswith("OPENED"))
    assert str(baselines) not in opened and str(data / "cifar-10-batches-py") not in opened
    assert "NVML []" in done.stdout
