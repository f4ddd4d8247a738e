"""The bare Celery app both bare baselines share: same Redis, same reliability settings.

Imports nothing but Celery, so the bare receiver (``bench.bare_send_task``) and the bare worker
(``bench.bare_celery``) carry only what their job needs. The settings that decide
throughput match the project's (``docs/architecture.md#tasks-and-queues``): JSON only,
results ignored, ``acks_late``, prefetch 1. What the bare app leaves out is the project's own
work: the ledger, task events, retry policies, routing to per-type queues.
"""

from __future__ import annotations

import os

from celery import Celery

QUEUE = "bench.bare"
POST_RESULT = "bench.post_result"


def bare_celery_app(name: str) -> Celery:
    """A Celery app on ``$REDIS_URL`` with the throughput-relevant settings of the project."""
    app = Celery(name, broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    concurrency = int(
        os.environ.get("WORKER_CONCURRENCY")
        or (100 if os.environ.get("WORKER_POOL") == "gevent" else 2)
    )
    # As the project's worker/config.py: an ack takes a broker connection, and kombu raises
    # when none is left (under gevent every task may ack at once).
    app.conf.broker_transport_options = {"max_connections": concurrency + 10}
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_routes={POST_RESULT: {"queue": QUEUE}},
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # As the project's settings do: the Procfile worker line no longer passes
        # --concurrency, and --pool comes from WORKER_POOL.
        worker_pool=os.environ.get("WORKER_POOL") or "prefork",
        worker_concurrency=concurrency,
        broker_pool_limit=max(10, concurrency),
    )
    return app
