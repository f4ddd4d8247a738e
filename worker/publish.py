"""Send fulfilment tasks by name (what the receiver, reconciliation and the CLI use)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from fulfillment.names import REPORT, task_name
from pax8.models import RequestType
from worker.messages import task_message


class CeleryPublisher:
    """Publishes provisioning and report tasks to their own queues."""

    def __init__(self, app: Celery, retry_policy: dict[str, Any] | None = None) -> None:
        self.app = app
        self.retry_policy = retry_policy or dict(app.conf.task_publish_retry_policy)

    def provision(
        self, request_type: str, request_id: str, detail_id: str, simulation: bool
    ) -> None:
        """Enqueue ``fulfillment.<type>(request_id, detail_id)``."""
        name = task_name(RequestType(request_type))
        self.app.send_task(
            name,
            args=[request_id, detail_id],
            kwargs={"simulation": simulation},
            queue=name,
            routing_key=name,
            retry=True,
            retry_policy=self.retry_policy,
        )

    def provision_message(
        self, request_type: str, request_id: str, detail_id: str, simulation: bool
    ) -> tuple[str, str]:
        """(queue, message) of the per-type task, for the ledger to enqueue atomically."""
        name = task_name(RequestType(request_type))
        args = [request_id, detail_id]
        return name, task_message(self.app, name, args, {"simulation": simulation}, name)

    def report(self, request_id: str, countdown: float | None = None) -> None:
        """Enqueue ``fulfillment.report(request_id)``."""
        self.app.send_task(
            REPORT,
            args=[request_id],
            queue=REPORT,
            routing_key=REPORT,
            countdown=countdown,
            retry=True,
            retry_policy=self.retry_policy,
        )
