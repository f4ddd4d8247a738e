"""Send fulfilment tasks by name (what the receiver, reconciliation and the CLI use).

A task's arguments are the request id (and the detail id) and, as keyword arguments, the
order's ``source`` and ``simulation`` flag: together the record's scope
(:class:`~fulfillment.ledger.refs.Ref`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from fulfillment.ledger.refs import Ref
from fulfillment.names import REPORT, task_name
from pax8.models import RequestType
from worker.messages import message_headers, task_message


class CeleryPublisher:
    """Publishes provisioning and report tasks to their own queues."""

    def __init__(self, app: Celery, retry_policy: dict[str, Any] | None = None) -> None:
        self.app = app
        self.retry_policy = retry_policy or dict(app.conf.task_publish_retry_policy)

    def provision(self, ref: Ref, request_type: str, detail_id: str) -> None:
        """Enqueue ``fulfillment.<type>(request_id, detail_id)``."""
        name = task_name(RequestType(request_type))
        self.app.send_task(
            name,
            args=[ref.id, detail_id],
            kwargs=_scope(ref),
            queue=name,
            routing_key=name,
            headers=message_headers(),
            retry=True,
            retry_policy=self.retry_policy,
        )

    def provision_message(self, ref: Ref, request_type: str, detail_id: str) -> tuple[str, str]:
        """(queue, message) of the per-type task, for the ledger to enqueue atomically."""
        name = task_name(RequestType(request_type))
        return name, task_message(self.app, name, [ref.id, detail_id], _scope(ref), name)

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
