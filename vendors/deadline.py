"""A total deadline for one HTTP call: connect, send and the whole answer, together.

httpx's timeouts bound each network operation, not the call: a read timeout restarts with
every read, so a vendor that trickles its answer a byte at a time keeps a call alive for as
long as it likes. The worker promises that a vendor call ends by its deadline (a call is
repeated after a crash only once that deadline has passed), so the deadline must hold.

:func:`within` sets the deadline for the calls made inside it (per thread: a context
variable), and :class:`DeadlineTransport` is httpx's own transport whose network streams
give each connect, read and write only the time left, and fail with httpx's timeout once
none is. Proxies and TLS work as with httpx's transport.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "vendor_call_deadline", default=None
)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Calls made inside end within ``seconds`` from now, or fail with an httpx timeout."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to the time left before the deadline; ``expired`` when none is left."""
    until = _deadline.get()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise expired("the call's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """Opens connections within the deadline; their streams keep to it."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport, its connections bounded by the deadline :func:`within` sets."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # httpx takes no network backend, but builds its pool (direct or through a proxy)
        # on httpcore's, which does: wrap that one. Fail at start, not silently, if a new
        # httpx builds it differently.
        pool = getattr(self, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore.NetworkBackend):
            raise RuntimeError(
                f"httpx {httpx.__version__}: cannot bound vendor calls by a deadline "
                "(its transport has no httpcore network backend to wrap)"
            )
        pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
