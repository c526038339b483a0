"""Bad input, said one way: every option, file or marker trainperf refuses stops the run before any benchmark as
a pytest usage error, which pytest prints on stderr as::

    ERROR: trainperf: <option, file or test>: <problem>; expected <what> (exit status 4)

and exits with status 4 (pytest's usage error, the gate's ``EXIT_BAD_INPUT``).

Why a ``UsageError`` and never ``pytest.exit``: pytest prints a usage error raised from the configure and
collection hooks in its own one-line ``ERROR:`` style, while ``pytest.exit`` from the same hooks prints
``! _pytest.outcomes.Exit: ... !``. Raising it from a test or fixture would only fail that test, so every check
runs before the first test (``options`` at configure time, ``session_start`` once collection finishes).
"""

from __future__ import annotations

from typing import NoReturn

import pytest

EXIT_STATUS = int(pytest.ExitCode.USAGE_ERROR)
_EXPECTED = "; expected "


def text(where: str, problem: str, expected: str | None) -> str:
    """The one sentence a refused input gets."""
    said = f"trainperf: {where}: {problem}"
    if expected:
        said += f"{_EXPECTED}{expected}"
    return f"{said} (exit status {EXIT_STATUS})"


def bad_input(where: str, problem: str, expected: str | None) -> NoReturn:
    """Stop the run: ``where`` (an option, a file, a test) has ``problem``; ``expected`` says what would do."""
    raise pytest.UsageError(text(where, problem, expected))


def split_expected(message: str) -> tuple[str, str | None]:
    """A core error's message ``"<problem>; expected <what>"`` as (problem, what); what is None when unsaid."""
    problem, found, expected = message.rpartition(_EXPECTED)
    return (problem, expected) if found else (message, None)


def refuse(message: str, expected: str | None = None) -> NoReturn:
    """Stop the run on a core error whose message starts with the file it is about (``"<file>: <problem>"``, as
    the gate's errors do); ``expected`` is said when the message does not say it already."""
    where, _, rest = message.partition(": ")
    if not rest:
        where, rest = "gate", message
    problem, said = split_expected(rest)
    bad_input(where, problem, said or expected)
