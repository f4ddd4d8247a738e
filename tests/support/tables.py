"""Tables printed at the end of a run (the fault suite's counts, the upgrade counts), also
when the tests run in several processes.

A test's rows travel with its report (``user_properties``), which pytest-xdist hands from
the process that ran the test to the one that prints: each conftest that keeps rows calls
:func:`carry` after each test (an autouse fixture), and the root conftest gathers them
(:func:`gather`, from ``pytest_runtest_logreport``) and prints them (:func:`print_tables`).
Without xdist, the same path runs in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

_KEY = "table-row"

_TABLES: dict[str, tuple[list[str], list[str]]] = {}


def carry(node: pytest.Item, section: str, header: Sequence[str], rows: Sequence[str]) -> None:
    """Attach ``rows`` of ``section`` (headed by ``header``) to ``node``'s report."""
    for row in rows:
        node.user_properties.append((_KEY, (section, list(header), row)))


def gather(report: pytest.TestReport) -> None:
    """Keep the rows a test's teardown report carries (once per test)."""
    if report.when != "teardown":
        return
    for key, value in report.user_properties:
        if key == _KEY:
            section, header, row = value
            _TABLES.setdefault(section, (list(header), []))[1].append(row)


def print_tables(terminalreporter: Any) -> None:
    """Every section gathered, in the order its first row arrived."""
    for section, (header, rows) in _TABLES.items():
        terminalreporter.section(section)
        for line in [*header, *rows]:
            terminalreporter.write_line(line)
