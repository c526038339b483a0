"""The pytest edge: everything that knows pytest or pytest-benchmark.

Options become ``addoption`` calls (``options``), one ``PluginState`` lives in the config's stash (``state``), the
session starts (``session_start``: checks before any test runs) and ends (``session_finish``: the gate's verdict,
an exit status), cases are parametrized (``parametrize``), fixtures hand tests a trainer or loader (``fixtures``),
and ``runner`` turns a measurement into pytest-benchmark rounds and a result record (``progress`` prints lines
for long cases). Every bad input ends the run one way (``errors``); skipped cases are counted per reason
(``skips``). Private attributes of pytest and pytest-benchmark are touched only in ``compat``. The plugin module
``trainperf.plugin`` is a few lines per hook over these; nothing below this package imports pytest.
"""
