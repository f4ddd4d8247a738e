"""The metrics endpoint each process kind serves on a port of its own, never the webhook port.

``GET /metrics`` answers Prometheus text; when ``METRICS_TOKEN`` is set, only a scrape that
carries ``Authorization: Bearer $METRICS_TOKEN`` (compared in constant time) gets it, any
other gets 401. Any other path is 404, any other method 405. Without a token the exporter
may only listen on loopback (``Settings.require`` refuses ``METRICS_HOST`` elsewhere).

The server is the standard library's threaded WSGI server on a daemon thread (one per
process), or gevent's own server in a process that gevent patched (gunicorn's master): a
scrape never waits on a webhook and a webhook never waits on a scrape.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class MetricsApp:
    """The WSGI app of ``/metrics`` for one registry."""

    def __init__(self, registry: Collector, token: str | None) -> None:
        self.registry = registry
        self._expected = f"Bearer {token}".encode() if token else None

    def allowed(self, authorization: str) -> bool:
        """Whether a request with this ``Authorization`` header may scrape."""
        if self._expected is None:
            return True
        return hmac.compare_digest(authorization.encode(errors="replace"), self._expected)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        if environ.get("PATH_INFO") not in ("/metrics", "/metrics/"):
            return _plain(start_response, "404 Not Found", b"not found\n")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", b"GET only\n")
        if not self.allowed(environ.get("HTTP_AUTHORIZATION", "")):
            return _plain(
                start_response,
                "401 Unauthorized",
                b"a metrics scrape needs Authorization: Bearer $METRICS_TOKEN\n",
                [("WWW-Authenticate", 'Bearer realm="metrics"')],
            )
        body = generate_latest(self.registry)
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        )
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]


def _plain(
    start_response: StartResponse,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        + (headers or []),
    )
    return [body]


class Server(Protocol):
    """A running exporter."""

    port: int

    def close(self) -> None:
        """Stop listening (in this process)."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Scrapes are not worth a log line each."""


class ThreadServer:
    """The exporter on a daemon thread of this process."""

    def __init__(self, app: MetricsApp, host: str, port: int) -> None:
        if ":" in host:
            _ThreadingServer.address_family = socket.AF_INET6
        self._server = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-exporter", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def forget(self) -> None:
        """In a forked child: close the inherited socket (the thread did not come along)."""
        self._server.socket.close()


class GeventServer:
    """The exporter as a gevent server (in a process that gevent patched)."""

    def __init__(self, app: MetricsApp, host: str, port: int) -> None:
        from gevent.pywsgi import WSGIServer as GeventWSGIServer

        self._server = GeventWSGIServer((host, port), app, log=None, error_log=log)
        self._server.start()
        self.port = int(self._server.server_port)

    def close(self) -> None:
        """Stop listening and serving (in a forked child: its copy only)."""
        self._server.stop(timeout=0)

    def forget(self) -> None:
        """In a forked child: stop the copy of the server the fork made."""
        self.close()


def serve(
    registry: Collector,
    host: str,
    port: int,
    token: str | None,
    *,
    gevent: bool = False,
    kind: str = "",
) -> ThreadServer | GeventServer | None:
    """Serve ``registry`` on ``host:port``; None (and one error line) if the port is taken.

    A worker that cannot serve its metrics still fulfils orders: the gap shows in
    Prometheus as the target being down, which an alert covers.
    """
    app = MetricsApp(registry, token)
    try:
        server = GeventServer(app, host, port) if gevent else ThreadServer(app, host, port)
    except OSError as exc:
        log.error(
            "metrics: cannot listen on %s:%s (%s); this %s serves no metrics", host, port,
            exc.strerror or exc, kind or "process",
        )  # fmt: skip
        return None
    log.info("metrics: %s serves http://%s:%s/metrics", kind or "process", host, server.port)
    return server
