"""Send fulfilment tasks by name (what the receiver, reconciliation and the CLI use).

A task's arguments are the request id (and the detail id) and, as keyword arguments, the
order's ``source`` and ``simulation`` flag: together the record's scope
(:class:`~fulfillment.ledger.refs.Ref`); a provisioning task also carries the order's
``route``, so the worker knows whose adapter (and call deadline) it claims for without a read.
A route of the routes file has a queue of its own (``fulfillment/names.py``); the default
route without a file, an order no route takes (``-``) and a route the file no longer has go
to the per-type queues (a worker there answers or holds them).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from config.routes import Routes
from fulfillment.ledger.refs import Ref
from fulfillment.names import REPORT, route_queue, task_name
from pax8.models import RequestType
from worker.messages import TaskMessages, message_headers


class CeleryPublisher:
    """Publishes provisioning and report tasks to their own queues."""

    def __init__(
        self, app: Celery, routes: Routes, retry_policy: dict[str, Any] | None = None
    ) -> None:
        self.app = app
        self.routes = routes
        self.retry_policy = retry_policy or dict(app.conf.task_publish_retry_policy)
        self.messages = TaskMessages(app)

    def queue(self, request_type: str, route: str) -> str:
        """Where a provisioning task of ``route`` waits: the route's own queue, or the
        per-type one."""
        known = self.routes.get(route)
        if known is not None and known.own_queue:
            return route_queue(route)
        return task_name(RequestType(request_type))

    def provision(self, ref: Ref, request_type: str, detail_id: str, route: str) -> None:
        """Enqueue ``fulfillment.<type>(request_id, detail_id)`` on ``route``'s queue."""
        queue = self.queue(request_type, route)
        self.app.send_task(
            task_name(RequestType(request_type)),
            args=[ref.id, detail_id],
            kwargs=_provision_kwargs(ref, route),
            queue=queue,
            routing_key=queue,
            headers=message_headers(),
            retry=True,
            retry_policy=self.retry_policy,
        )

    def provision_message(
        self, ref: Ref, request_type: str, detail_id: str, route: str
    ) -> tuple[str, str]:
        """(queue, message) of the per-type task, for the ledger to enqueue atomically."""
        name, queue = task_name(RequestType(request_type)), self.queue(request_type, route)
        kwargs = _provision_kwargs(ref, route)
        return queue, self.messages.message(name, [ref.id, detail_id], kwargs, queue)

    def report(self, ref: Ref, countdown: float | None = None) -> None:
        """Enqueue ``fulfillment.report(request_id)``."""
        self.app.send_task(
            REPORT,
            args=[ref.id],
            kwargs=_scope(ref),
            queue=REPORT,
            routing_key=REPORT,
            countdown=countdown,
            headers=message_headers(),
            retry=True,
            retry_policy=self.retry_policy,
        )


def _scope(ref: Ref) -> dict[str, Any]:
    """The keyword arguments that say which scope a task's request id is in."""
    return {"simulation": ref.simulation, "source": ref.source}


def _provision_kwargs(ref: Ref, route: str) -> dict[str, Any]:
    """The scope and, when known, the route the record was kept with."""
    return {**_scope(ref), "route": route} if route else _scope(ref)
