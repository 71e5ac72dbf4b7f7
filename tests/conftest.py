"""Hooks for the whole test run. Here rather than in tests/integration: with xdist the
controller process, which prints the summary, loads only the conftest files at the top of the
test paths."""

from __future__ import annotations

from typing import Any

MEASURED = "measured"
"""A test's `record_property(MEASURED, line)`: a figure docs/ quotes (takeover times, ...)."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the tests measured, at the end of the run (xdist carries the
    properties of each report to the controller)."""
    lines = [
        f"{report.nodeid.split('::')[-1]}: {value}"
        for report in terminalreporter.stats.get("passed", [])
        for name, value in getattr(report, "user_properties", [])
        if name == MEASURED
    ]
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)
