"""The worker's and beat's metrics exporters (connected by :mod:`worker.signals`).

A worker's pool processes record vendor calls, results, retries and dead orders into
prometheus_client's multi-process files; its main process merges them on
``WORKER_METRICS_PORT``. Under gevent the main process runs the tasks itself and records
into the same files (prometheus_client's locks are patched into gevent's). Beat serves
what only the ledger and the broker know (orders by state and age, queue depth,
reconciliation: :class:`~fulfillment.views.ledger_metrics.LedgerCollector`) on
``BEAT_METRICS_PORT``, once per deployment as beat is.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from config.settings import Settings
from fulfillment.doctor.metrics import DoctorCollector
from fulfillment.ledger import Ledger
from fulfillment.ledger.slots import VendorSlots, backend_name
from fulfillment.runtime import multiprocess
from fulfillment.runtime.clients import RedisUse, redis_client
from fulfillment.runtime.exporter import GeventServer, ThreadServer, serve
from fulfillment.usage.metrics import UsageCollector
from fulfillment.usage.store import UsageStore
from fulfillment.views.ledger_metrics import LedgerCollector, SlotsCollector
from fulfillment.workflow.capacity import cap_of
from worker.config import all_queues


def _token(settings: Settings) -> str | None:
    return settings.metrics_token.get_secret_value() if settings.metrics_token else None


class WorkerMetrics:
    """The main process's side of a worker's metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path: Path | None = None
        self.server: ThreadServer | GeventServer | None = None
        self._main = 0

    def start(self) -> None:
        """In the main process, before the pool forks: files, then the exporter (with the
        exporter off, the pool processes keep their counts in memory)."""
        self._main = os.getpid()
        if self.settings.worker_metrics_port:
            self.path = multiprocess.start("worker")
            self.server = serve(
                multiprocess.registry(self.path),
                self.settings.metrics_host,
                self.settings.worker_metrics_port,
                _token(self.settings),
                # Under gevent the tasks run in this process: serve from a greenlet.
                gevent=self.settings.worker_pool == "gevent",
                kind="worker",
            )

    def child_started(self) -> None:
        """In a new pool process: close the exporter socket the fork copied."""
        if isinstance(self.server, ThreadServer):
            self.server.forget()
        self.server = None

    def child_stopping(self) -> None:
        """A pool process is about to exit: its live gauges go with it."""
        if self.path is not None:
            multiprocess.child_died(os.getpid(), self.path)

    def stop(self) -> None:
        """The main process stops."""
        if os.getpid() != self._main:
            return
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.path is not None:
            multiprocess.remove(self.path)


def serve_ledger(settings: Settings) -> ThreadServer | GeventServer | None:
    """Beat's exporter: the ledger's view, read at each scrape (short Redis timeouts)."""
    if not settings.beat_metrics_port:
        return None
    registry = CollectorRegistry()
    client = redis_client(settings, RedisUse.RECEIVER)
    ledger = Ledger(client)
    queues = all_queues(settings)
    registry.register(LedgerCollector(ledger, queues, settings.reconcile_interval_seconds))
    registry.register(UsageCollector(UsageStore(client)))
    caps = {
        backend_name(route, simulation): cap
        for route in settings.routes.names
        for simulation in (False, True)
        if (cap := cap_of(settings, route, simulation))
    }
    if caps:
        registry.register(SlotsCollector(VendorSlots(client), caps))
    registry.register(
        DoctorCollector(ledger, settings.doctor_interval_seconds, settings.routes.names)
    )
    return serve(
        registry,
        settings.metrics_host,
        settings.beat_metrics_port,
        _token(settings),
        kind="beat",
    )
