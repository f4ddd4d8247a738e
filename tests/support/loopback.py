"""A threaded HTTP server on 127.0.0.1 for the in-process test doubles.

The Sentry collector, the vendor stub and the webhook listener differ only in their
handler; starting on a free port, serving from a daemon thread and stopping cleanly
(``close()`` or ``with``) live here once.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

BACKLOG = 1024
"""The listen backlog: a production server's (gunicorn 2048, nginx 511), not socketserver's 5.

With 5, connections that arrive while the serving thread waits for the GIL (two gevent
workers with 200 calls in flight) overflow the accept queue: the kernel drops their SYNs (a
second's delay each, 5 s is a connect timeout) and, past its SYN-cookie fallback, resets
some of them once the request is sent (``ECONNRESET`` mid-call), which no real vendor's
server does (``tests/test_vendor_stub.py``)."""


class _Server(ThreadingHTTPServer):
    request_queue_size = BACKLOG


class LoopbackServer:
    """Serves ``handler`` on 127.0.0.1 from a daemon thread until :meth:`close`."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        name: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        # ``host``: another address than loopback only for hosts a test built itself.
        self.host = host
        self.server = _Server((host, port), handler)
        self.server.daemon_threads = True
        # A short poll interval: shutdown() waits for the next poll.
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=name,
            daemon=True,
        )
        self.thread.start()

    @property
    def port(self) -> int:
        """The port the kernel chose."""
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
