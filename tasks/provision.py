"""``fulfillment.net_new`` … ``fulfillment.partner_enrollment``: one task per request type.

Each task is a shim over :func:`fulfillment.provisioning.provision`: it passes its
collaborators in and maps the returned step to Celery (enqueue the report, retry with a
countdown, or stop). Arguments are ids only, so Flower shows which order a task is for
and no secret or personal data sits in Redis twice.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from config.sentry import capture_dead_order
from fulfillment.names import PROVISION_TASKS
from fulfillment.provisioning import provision
from pax8.models import RequestType
from tasks.context import context
from tasks.outage import requeue_on_outage
from worker.app import app


def run_provision(task: Task, request_id: str, detail_id: str) -> str:
    """Provision one (request, detail) and act on the outcome; returns the step kind."""
    with requeue_on_outage(lambda: f"request_id={request_id} {task.name}"):
        return _provision(task, request_id, detail_id)


def _provision(task: Task, request_id: str, detail_id: str) -> str:
    ctx = context()
    step = provision(
        ctx.ledger,
        ctx.adapters,
        request_id,
        detail_id,
        task.request.id,
        ctx.policy,
        transient=(SoftTimeLimitExceeded,),
    )
    if step.kind == "report":
        ctx.publisher.report(request_id)
    elif step.kind == "retry":
        raise task.retry(countdown=step.countdown, max_retries=None)
    elif step.kind == "dead":
        capture_dead_order(request_id, step.reason, step.error, task=task.name)
    return step.kind


def _define(request_type: RequestType) -> Any:
    name = PROVISION_TASKS[request_type]

    def provision_task(self: Task, request_id: str, detail_id: str, **meta: Any) -> str:
        return run_provision(self, request_id, detail_id)

    provision_task.__name__ = request_type.snake
    provision_task.__doc__ = f"Provision a {request_type.value} request through the vendor adapter."
    return app.task(name=name, bind=True, queue=name, max_retries=None)(provision_task)


net_new = _define(RequestType.NET_NEW)
update = _define(RequestType.UPDATE)
deprovision = _define(RequestType.DEPROVISION)
trial_create = _define(RequestType.TRIAL_CREATE)
trial_convert = _define(RequestType.TRIAL_CONVERT)
change_product = _define(RequestType.CHANGE_PRODUCT)
partner_enrollment = _define(RequestType.PARTNER_ENROLLMENT)
renewal = _define(RequestType.RENEWAL)
