"""Serve the sandbox with werkzeug's threaded server until SIGTERM or SIGINT.

``serve(config)`` is what ``python -m sandbox`` and ``fulfill sandbox`` call. It logs
``sandbox listening on http://HOST:PORT`` once the socket is bound, and on a signal stops
accepting, ends background deliveries and returns.
"""

import logging
import signal
import socket
import threading
from types import FrameType

from werkzeug.serving import WSGIRequestHandler, make_server

from sandbox.app import close_app, create_app
from sandbox.config import ConfigError, SandboxConfig, env_name

log = logging.getLogger("sandbox")

BACKLOG = 1024


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's handler with Nagle off: it writes headers and body in separate sends, and
    with Nagle on a keep-alive client waits out a delayed ACK before the body arrives."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so a busy port is one clear error, not werkzeug's exit."""
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
    # werkzeug dups the descriptor; our copy is closed at once.
    with listener:
        server = make_server(
            config.host,
            config.port,
            app,
            threaded=True,
            request_handler=_RequestHandler,
            fd=listener.fileno(),
        )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-http", daemon=True
    )
    thread.start()
    host = f"[{config.host}]" if ":" in config.host else config.host
    log.info("sandbox listening on http://%s:%d", host, server.socket.getsockname()[1])
    try:
        # A timed wait keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            if not thread.is_alive():
                break
    except KeyboardInterrupt:
        pass
    finally:
        log.info("sandbox stopping")
        server.shutdown()
        server.server_close()
        close_app(app)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
