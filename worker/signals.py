"""Start-up and shut-down hooks of the worker and beat processes (``worker/app.py`` only).

They also start the metrics exporters (:mod:`worker.metrics`): a worker's in its main
process before the pool forks, beat's at its start; and a worker's heartbeat
(:mod:`worker.liveness`), in its main process before the pool forks (its pool processes
inherit the worker's id, which their claims record), stopped as the worker exits.

A worker or beat that lacks what its role needs (Pax8 credentials, a loadable vendor
adapter for every route it serves, their tokens) stops at start with one line naming the
setting (and for a routes file, the file and the route), rather than failing every order
later, and so does a worker whose pool is not ``WORKER_POOL``'s (``worker/pool.py``); one
started on ledger data its release cannot use (a newer schema) stops with one
line too, before it consumes or sends a message (an older schema is migrated first, when
that is safe: ``fulfillment/ledger/migrations.py``). A worker given ``WORKER_ROUTES`` or
``WORKER_EXCLUDE_ROUTES`` consumes those routes' queues (or every queue but theirs): the
bulkheads of ``docs/routes.md``. The receiver and the CLI never connect these.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from celery import signals

from config.logging import configure_logging, log_start
from config.scrub import Scrubber
from config.settings import ConfigError, Role, Settings
from fulfillment.ledger.migrations import check_at_start
from fulfillment.names import route_queue
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from worker import liveness
from worker.metrics import WorkerMetrics, serve_ledger
from worker.pool import pool_problem


def connect(settings: Settings, close_services: Callable[[], None]) -> None:
    """Connect the hooks of the worker and beat processes of an app built from ``settings``
    (``close_services``: the app's, called as a pool process exits)."""
    scrubber = Scrubber.from_settings(settings)
    metrics = WorkerMetrics(settings)

    def require(role: Role) -> None:
        try:
            settings.require(role)
            if role == "worker":
                from vendors.loader import Adapters

                served = [name for name in settings.routes.names if settings.serves(name)]
                Adapters(settings).check(served)
        except ConfigError as exc:
            print(f"fulfillment: configuration error: {exc}", file=sys.stderr, flush=True)
            # os._exit: Celery catches SystemExit raised inside some signal handlers.
            os._exit(2)

    def check_ledger() -> None:
        services = Services(settings, use=RedisUse.WORKER)
        try:
            # os._exit: see require(); a worker's main process builds no other services.
            check_at_start(
                services.ledger, migrate_at_start=settings.ledger_migrate_at_start, exit=os._exit
            )
        finally:
            services.close()

    def start(role: Role) -> None:
        # worker_init comes before Celery's setup_logging: configure now, so the first
        # line is ours.
        configure_logging(settings.log_level, settings.log_format, scrubber)
        log_start(role)
        require(role)
        check_ledger()
        from sentry_sdk.integrations.celery import CeleryIntegration

        from config.sentry import init_sentry

        init_sentry(settings, role, [CeleryIntegration(monitor_beat_tasks=True)])

    def setup_logging(**_: Any) -> None:
        configure_logging(settings.log_level, settings.log_format, scrubber)

    def check_pool(pool_cls: Any) -> None:
        problem = pool_problem(settings, pool_cls)
        if problem is not None:
            print(f"fulfillment: configuration error: {problem}", file=sys.stderr, flush=True)
            os._exit(2)  # see require()

    def worker_init(sender: Any = None, **_: Any) -> None:
        check_pool(sender.pool_cls)  # before Redis: a wrong command line needs none
        start("worker")
        metrics.start()
        liveness.start(settings, sender.app, str(sender.hostname))

    def beat_init(**_: Any) -> None:
        start("beat")
        serve_ledger(settings)

    def process_init(**_: Any) -> None:
        metrics.child_started()

    def process_shutdown(**_: Any) -> None:
        metrics.child_stopping()
        close_services()

    def worker_shutdown(**_: Any) -> None:
        liveness.stop()
        metrics.stop()
        # Under gevent the tasks ran in this process (no pool process exit closed them).
        close_services()

    def after_setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
        # As -Q / -X would: what this worker consumes, from the routes it serves.
        queues = instance.app.amqp.queues
        if settings.worker_routes:
            queues.select([route_queue(name) for name in settings.worker_routes])
        for name in settings.worker_exclude_routes:
            queues.deselect(route_queue(name))

    # weak=False: the handlers are closures that nothing else keeps alive.
    signals.setup_logging.connect(setup_logging, weak=False)
    signals.worker_init.connect(worker_init, weak=False)
    signals.beat_init.connect(beat_init, weak=False)
    signals.worker_process_init.connect(process_init, weak=False)
    signals.worker_process_shutdown.connect(process_shutdown, weak=False)
    signals.worker_shutdown.connect(worker_shutdown, weak=False)
    signals.celeryd_after_setup.connect(after_setup, weak=False)
