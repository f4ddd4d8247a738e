"""Serve the sandbox until SIGTERM or SIGINT: waitress (keep-alive), or werkzeug's server.

``serve(config)`` is what ``python -m sandbox`` and ``fulfill sandbox`` call. It logs
``sandbox listening on http://HOST:PORT`` once the socket is bound, and on a signal stops
accepting, ends background deliveries and returns.

By default the sandbox is served by waitress, which keeps a client's connection open
between requests as Pax8 does: a worker's pooled Pax8 client then posts every result on the
connection it already has, and a benchmark measures what production would pay.
``--no-keep-alive`` serves it with werkzeug's threaded server instead, which answers every
request with ``Connection: close`` (a new TCP connection per request, as before).
"""

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, Protocol

from flask import Flask
from waitress.server import create_server
from werkzeug.serving import WSGIRequestHandler, make_server

from sandbox.app import close_app, create_app
from sandbox.config import ConfigError, SandboxConfig, env_name

log = logging.getLogger("sandbox")
access = logging.getLogger("sandbox.access")

BACKLOG = 1024
THREADS = 16
"""waitress's request threads: the result POSTs of many worker processes at once (werkzeug's
server starts a thread per connection; waitress queues requests beyond these)."""
CONNECTIONS = 1000
"""Open connections waitress keeps (its default, 100, is fewer than the idle keep-alive
connections of a benchmark's worker processes and load generator)."""


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's handler with Nagle off: it writes headers and body in separate sends, and
    with Nagle on a keep-alive client waits out a delayed ACK before the body arrives."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Server(Protocol):
    def serve(self) -> None: ...

    def stop(self) -> None: ...

    def port(self) -> int: ...


class _Werkzeug:
    """werkzeug's threaded server: ``Connection: close`` on every answer."""

    def __init__(self, config: SandboxConfig, app: Flask, listener: socket.socket) -> None:
        # werkzeug dups the descriptor; the caller closes its copy.
        self.server = make_server(
            config.host,
            config.port,
            app,
            threaded=True,
            request_handler=_RequestHandler,
            fd=listener.fileno(),
        )

    def serve(self) -> None:
        self.server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def port(self) -> int:
        return int(self.server.socket.getsockname()[1])


class _Waitress:
    """waitress: keeps connections open between requests (HTTP/1.1 keep-alive)."""

    def __init__(self, app: Callable[..., Any], listener: socket.socket) -> None:
        self.listener = listener
        self.channels: dict[int, Any] = {}  # waitress's socket map: the listener, each client
        self.server = create_server(
            app,
            self.channels,
            sockets=[listener],
            threads=THREADS,
            connection_limit=CONNECTIONS,
            backlog=BACKLOG,
            ident="pax8-sandbox",
        )

    def serve(self) -> None:
        self.server.run()

    def stop(self) -> None:
        # Closing the listener and every open channel empties waitress's map, which ends
        # its loop; the request threads finish what they hold.
        for channel in list(self.channels.values()):
            channel.close()
        self.server.task_dispatcher.shutdown()

    def port(self) -> int:
        return int(self.listener.getsockname()[1])


def _logged(app: Flask) -> Callable[..., Iterable[bytes]]:
    """``app`` logging each request at INFO (``--access-log``; waitress logs none)."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            access.info("%s %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"], status)
            return start_response(status, headers, *rest)

        return app(environ, start)

    return wsgi


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a busy port is one clear error, not the server's."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return socket.create_server(address, family=family, backlog=BACKLOG)
    except OSError as exc:
        raise ConfigError(
            f"--port ({env_name('port')}) cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc


def serve(config: SandboxConfig) -> None:
    """Run the sandbox in the foreground until SIGTERM/SIGINT (or KeyboardInterrupt).

    Raises :class:`~sandbox.config.ConfigError` when the address cannot be bound.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    # werkzeug logs each request at INFO; a benchmark would drown in it.
    logging.getLogger("werkzeug").setLevel(logging.INFO if config.access_log else logging.WARNING)
    listener = _bind(config.host, config.port)
    app = create_app(config)
    server: _Server
    if config.keep_alive:
        server = _Waitress(_logged(app) if config.access_log else app, listener)
    else:
        with listener:
            server = _Werkzeug(config, app, listener)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    thread = threading.Thread(target=server.serve, name="sandbox-http", daemon=True)
    thread.start()
    host = f"[{config.host}]" if ":" in config.host else config.host
    log.info("sandbox listening on http://%s:%d", host, server.port())
    try:
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            if not thread.is_alive():
                break
    except KeyboardInterrupt:
        pass
    finally:
        log.info("sandbox stopping")
        server.stop()
        thread.join(5)
        close_app(app)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
