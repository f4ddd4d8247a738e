"""Which addresses the test process may connect to: loopback, plus what a test assigned.

``tests/conftest.py`` refuses every socket to anything else. A test that builds its own
hosts (:mod:`tests.support.netns`: network namespaces on a bridge, addresses it chose,
no route out) opens exactly those addresses for its duration with :func:`allow`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_ALLOWED: set[str] = set()


def allowed(host: str) -> bool:
    """Whether the test process may connect to ``host``."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    return address.is_loopback or str(address) in _ALLOWED


@contextmanager
def allow(addresses: Iterable[str]) -> Iterator[None]:
    """Let the test process reach ``addresses`` (ones the test assigned) inside the block."""
    added = {str(ipaddress.ip_address(a)) for a in addresses} - _ALLOWED
    _ALLOWED.update(added)
    try:
        yield
    finally:
        _ALLOWED.difference_update(added)
