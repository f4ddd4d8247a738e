"""The receiver's metrics exporter, run by gunicorn's master (hooks in ``gunicorn_conf``).

The gevent workers record webhook counts and latencies into prometheus_client's
multi-process files; the master merges them on ``WEB_METRICS_PORT`` (not the webhook port),
drops a dead worker's live files (``child_exit``), and removes the directory at exit. The
master never answers a webhook, so a scrape costs a webhook nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fulfillment.runtime import multiprocess
from fulfillment.runtime.exporter import GeventServer, ThreadServer, serve

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)


class WebMetrics:
    """The master's side of the receiver's metrics: directory and exporter."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.server: GeventServer | ThreadServer | None = None
        self._master = 0

    def prepare(self, settings: Settings | None) -> None:
        """In the master, before the app is loaded or a worker forked (with the exporter
        off, the workers keep their counts in memory: nothing to merge, no files).
        ``settings`` is None when they do not load: the app's import then reports it."""
        if settings is None:
            return
        if settings.web_metrics_port:
            self.path = multiprocess.start("web")
        self._master = os.getpid()

    def when_ready(self, _server: Any) -> None:
        """Serve the merged metrics once gunicorn listens."""
        from config.settings import load_settings

        settings = load_settings("receiver")
        if self.path is None or not settings.web_metrics_port:
            return
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        self.server = serve(
            multiprocess.registry(self.path),
            settings.metrics_host,
            settings.web_metrics_port,
            token,
            gevent=True,
            kind="receiver",
        )

    def post_fork(self, _server: Any, _worker: Any) -> None:
        """In a new worker: the exporter stays the master's."""
        if self.server is not None:
            self.server.forget()
            self.server = None

    def child_exit(self, _server: Any, worker: Any) -> None:
        """A worker exited: its live gauges go (its counts stay, as counters must)."""
        if self.path is not None:
            multiprocess.child_died(worker.pid, self.path)

    def on_exit(self, _server: Any) -> None:
        """The master stops: close the exporter and remove the files."""
        if os.getpid() != self._master:
            return
        if self.server is not None:
            self.server.close()
        if self.path is not None:
            multiprocess.remove(self.path)


web_metrics = WebMetrics()
