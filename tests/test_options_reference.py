"""docs/options.md is what scripts/options_reference.py renders from the option declarations, and says all of it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from trainperf.settings import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "options_reference.py"
PAGE = ROOT / "docs" / "options.md"


def _script():
    spec = importlib.util.spec_from_file_location("options_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_the_rendered_one():
    assert PAGE.read_text(encoding="utf-8") == _script().render(), (
        "docs/options.md is stale: run python scripts/options_reference.py"
    )


def test_every_option_has_a_row_with_its_flag_ini_key_env_default_and_help():
    rows = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| `--trainperf-")]
    assert len(rows) == len(OPTIONS)
    for option, row in zip(OPTIONS, rows, strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[0].startswith(f"`{option.cli}") and cells[1] == f"`{option.ini}`"
        assert cells[2] == (f"`{option.env}`" if option.env else "–")
        assert cells[3] == ("unset" if option.default is None else f"`{option.default.replace('|', chr(92) + '|')}`")
        assert option.expected[:12].replace("|", "\\|") in cells[4] and option.help[:20] in cells[5]
    data_dir = rows[[o.name for o in OPTIONS].index("data_dir")]
    assert "`TRAINPERF_DATA_DIR`" in data_dir and "| unset |" in data_dir


def test_a_pipe_or_angle_bracket_in_a_declaration_cannot_break_the_table():
    row = _script().row(next(o for o in OPTIONS if o.name == "baseline_dir"))
    assert "one \\<machine key>.json per machine" in row
    row = _script().row(next(o for o in OPTIONS if o.name == "steps"))
    assert row.startswith("| `--trainperf-steps N\\|auto` |") and row.count(" | ") == 5


def test_check_exits_1_on_a_stale_page_and_writing_makes_it_current(tmp_path):
    page = tmp_path / "options.md"
    page.write_text(PAGE.read_text(encoding="utf-8").replace("timed rounds", "rounds"), encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--output", str(page), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    stale = run("--check")
    assert (stale.returncode, stale.stderr) == (1, f"{page} is stale: run python scripts/options_reference.py\n")
    assert run().returncode == 0 and run("--check").returncode == 0
    assert page.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")
