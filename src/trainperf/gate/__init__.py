"""The regression gate: is this run slower than the committed baseline?

``verdict`` is the pure policy (thresholds, noise, the verdict of one benchmark), ``power`` what a gate can
detect. ``judging`` compares this run with its references and decides an exit status; ``finish`` ends a gated
run (confirm a suspect in a fresh process, wait for a quiet machine, record a baseline); ``fresh_run`` launches
those processes. The baseline file is ``baseline``, what a recording keeps is ``recording``; ``ab`` compares two
revisions, ``baseline_commands`` is ``trainperf baseline …`` and ``verdict_report`` explains a verdict in words.
No pytest here: the pytest edge passes plain values in and turns the outcome into an exit status.
"""
