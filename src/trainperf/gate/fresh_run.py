"""Measure benchmarks again in a fresh pytest process: the confirmation of a suspected regression and the extra
runs of a recording. No pytest import: the plugin hands over the command line it was started with.

A fresh process is the point: it draws new thread placement, caches and clocks, which is the noise a run-level
verdict must see. The child gets the same trainperf options, plugins (``-p``), ini file and rootdir, selects
the benchmarks by node id, writes its JSON to a temporary file and judges nothing (``CHILD_ENV``).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trainperf import child_process
from trainperf.child_process import ChildError
from trainperf.gate.runs import RunError, SavedRun, load_run

CHILD_ENV = "TRAINPERF_FRESH_RUN"
# pytest options (and their short forms) whose value is the next argument, kept for the child: which plugins
# load, which ini file and overrides apply. Paths, -m and -k are replaced by node ids.
_KEEP_WITH_VALUE = ("-p", "-o", "--override-ini", "-W", "--pythonwarnings")


@dataclass
class FreshRun:
    """What a fresh process measured, or why it measured nothing."""

    run: SavedRun | None
    error: str | None
    seconds: float
    command: list[str] = field(default_factory=list)


def child_arguments(args: Iterable[str], valued_trainperf_options: set[str]) -> list[str]:
    """The options of ``args`` (a pytest command line) that shape what a benchmark measures: every
    ``--trainperf-*`` option and the plugin, ini-override and warning options. ``valued_trainperf_options``
    names the trainperf flags that take a value."""
    out: list[str] = []
    tokens = list(args)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name = token.split("=", 1)[0]
        takes_value = name in valued_trainperf_options or name in _KEEP_WITH_VALUE
        if token.startswith("--trainperf-") or name in _KEEP_WITH_VALUE:
            out.append(token)
            if takes_value and "=" not in token and i + 1 < len(tokens):
                out.append(tokens[i + 1])
                i += 1
        elif token.startswith("-p") and len(token) > 2:  # -pNAME
            out.append(token)
        i += 1
    return out


def command(
    nodeids: Sequence[str], options: Sequence[str], json_path: Path, rootdir: Path, inifile: Path | None
) -> list[str]:
    config = ["-c", str(inifile)] if inifile else []
    return [
        sys.executable,
        "-m",
        "pytest",
        *config,
        f"--rootdir={rootdir}",
        "-q",
        "-p",
        "no:cacheprovider",
        *options,
        f"--benchmark-json={json_path}",
        *nodeids,
    ]


def measure(
    nodeids: Sequence[str],
    options: Sequence[str],
    *,
    rootdir: Path,
    inifile: Path | None,
    invocation_dir: Path,
    timeout_s: float,
) -> FreshRun:
    """Run ``nodeids`` in one fresh pytest process, at most ``timeout_s`` seconds."""
    env = dict(os.environ)
    env[CHILD_ENV] = "1"
    # The child is given its options explicitly; inherited ones could autosave or write the parent's JSON.
    env.pop("PYTEST_ADDOPTS", None)
    # What the parent could import, the child can: modules next to where pytest was started (a -p plugin, a
    # model factory) and directories pytest or a conftest put on sys.path.
    paths = [str(invocation_dir), *(p for p in sys.path if p and os.path.isdir(p)), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    with tempfile.TemporaryDirectory(prefix="trainperf-fresh-") as tmp:
        json_path = Path(tmp) / "fresh.json"
        cmd = command(nodeids, options, json_path, rootdir, inifile)
        try:
            done = child_process.run(
                cmd, what="fresh pytest run", cwd=rootdir, env=env, timeout_s=timeout_s, check=False
            )
        except ChildError as exc:
            if exc.start_error is not None:
                return FreshRun(None, f"could not start: {exc.start_error}", exc.seconds, cmd)
            return FreshRun(None, f"did not finish within {timeout_s:.0f} s", exc.seconds, cmd)
        seconds = done.seconds
        if done.returncode != 0 or not json_path.exists():
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            return FreshRun(None, f"exited {done.returncode}: {tail}", seconds, cmd)
        try:
            run = load_run(json_path)
        except RunError as exc:
            return FreshRun(None, str(exc), seconds, cmd)
    missing = sorted({n.rsplit("::", 1)[-1] for n in nodeids} - set(run.results))
    if missing:
        return FreshRun(run, f"measured no result for {', '.join(missing)}", seconds, cmd)
    return FreshRun(run, None, seconds, cmd)


def addopts_tokens() -> list[str]:
    """PYTEST_ADDOPTS split like pytest splits it, so its trainperf options reach the child too."""
    return shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
