"""Prints, at the end of the run, how many cases the schemathesis run generated."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for line in getattr(config, "conductor_fuzz_summary", []):
        terminalreporter.write_line(line)
