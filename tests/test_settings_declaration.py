"""Each option is declared once, on a Settings field, and trainperf.settings stays free of pytest and torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from trainperf.pytest_edge.options import settings_from_config
from trainperf.settings import OPTIONS, Settings

ENV_NAMES = [o.env for o in OPTIONS if o.env]


def test_every_option_is_a_settings_field_with_the_same_default():
    by_name = {f.name: f for f in dataclasses.fields(Settings)}
    assert [o.name for o in OPTIONS] == [name for name in by_name if name != "overrides"]
    for option in OPTIONS:
        parsed = None if option.default is None else option.parse(option.default)
        assert by_name[option.name].default == parsed, option.name
        assert type(by_name[option.name].default) is type(parsed), option.name
    assert Settings().loader_workers is None and Settings().confirm_timeout_s == 600.0  # None: "auto"
    assert Settings().busy_limit == 0.1 and Settings().confirm is True and Settings().strict is False


def test_importing_settings_imports_neither_pytest_nor_torch():
    code = (
        "import sys, trainperf.settings, trainperf.gate.judging, trainperf.gate.finish\n"
        "import trainperf.measurement.batch_fit\n"
        "print(sorted(m for m in ('pytest', '_pytest', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_run_without_trainperf_options_gets_the_declared_defaults(pytester, monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    assert settings_from_config(pytester.parseconfig()) == Settings()


def test_command_line_then_environment_then_ini_then_default(pytester, monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    assert settings_from_config(pytester.parseconfig()).rdzv_id == "trainperf"
    pytester.makeini("[pytest]\ntrainperf_rdzv_id = from-ini\ntrainperf_strict = 1\n")
    assert settings_from_config(pytester.parseconfig()).rdzv_id == "from-ini"
    monkeypatch.setenv("TRAINPERF_RDZV_ID", "from-env")
    settings = settings_from_config(pytester.parseconfig())
    assert settings.rdzv_id == "from-env" and settings.strict is True
    assert settings_from_config(pytester.parseconfig("--trainperf-rdzv-id=from-cli")).rdzv_id == "from-cli"
    monkeypatch.setenv("TRAINPERF_NNODES", "0")
    # The message's wording is the errors module's; this test is about where the value came from.
    with pytest.raises(
        pytest.UsageError, match=r"environment variable TRAINPERF_NNODES: .*expected a positive integer"
    ):
        settings_from_config(pytester.parseconfig())
