"""``fulfillment.net_new`` … ``fulfillment.partner_enrollment``: one task per request type.

Each task is a shim over :func:`fulfillment.provisioning.provision`: it passes its
collaborators in and maps the returned step to Celery (report, retry with a countdown,
or stop). Arguments are ids only, so Flower shows which order a task is for and no
secret or personal data sits in Redis twice.

The result is reported right away, in the same task: one task per order instead of two
in the common case. Only when Pax8 cannot take it now (or another report run holds the
order) does ``fulfillment.report`` take over, with its backoff and retry budget.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from config.sentry import capture_dead_order
from fulfillment.backoff import backoff_delay
from fulfillment.names import PROVISION_TASKS, REPORT
from fulfillment.provisioning import provision
from pax8.models import RequestType
from tasks.context import Context, context
from tasks.outage import requeue_on_outage
from tasks.report import report_once
from worker.app import app

log = logging.getLogger(__name__)


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
        _report_now(ctx, request_id, task.request.id)
    elif step.kind == "retry":
        raise task.retry(countdown=step.countdown, max_retries=None)
    elif step.kind == "dead":
        capture_dead_order(request_id, step.reason, step.error, task=task.name)
    return step.kind


def _report_now(ctx: Context, request_id: str, owner: str) -> None:
    result = report_once(ctx, request_id, owner)
    if result.kind == "transient":
        settings = ctx.settings
        delay = backoff_delay(
            0,
            settings.retry_backoff_seconds,
            settings.retry_backoff_max_seconds,
            getattr(result.error, "retry_after", None),
            limit=settings.max_countdown_seconds,
        )
        log.info(
            "request_id=%s not reported yet (%s): %s retries it in %.1fs",
            request_id,
            result.error,
            REPORT,
            delay,
        )
        ctx.publisher.report(request_id, countdown=delay)
    elif result.kind == "busy":
        ctx.publisher.report(request_id, countdown=2.0)


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
