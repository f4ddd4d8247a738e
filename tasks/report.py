"""``fulfillment.report``: post the ProvisionResult(s) a finished request owes Pax8.

:func:`report_once` runs one report and sorts out what went wrong; the provisioning
tasks call it right after the vendor answered (one task per order when all goes well),
and this task takes over when Pax8 could not take the result then: it retries
transient errors with backoff within ``REPORT_MAX_RETRIES``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import sentry_sdk
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from config.sentry import capture_dead_order
from fulfillment.backoff import backoff_delay
from fulfillment.events import log_state
from fulfillment.names import REPORT
from fulfillment.reporting import NotAcknowledgedYet, report
from pax8.errors import AuthenticationError, CredentialsMissing, PermanentError, TransientError
from tasks.context import Context, context
from tasks.outage import requeue_on_outage
from worker.app import app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reported:
    """How one report run ended."""

    kind: Literal["done", "busy", "transient", "unauthorized", "dead"]
    state: str = ""
    error: BaseException | None = None


def report_once(ctx: Context, request_id: str, owner: str) -> Reported:
    """Report ``request_id`` once; credential and refusal problems are dealt with here."""
    try:
        outcome = report(
            ctx.ledger,
            ctx.pax8,
            request_id,
            lock_seconds=ctx.settings.task_time_limit_seconds + 30,
            owner=owner,
        )
    except (TransientError, SoftTimeLimitExceeded) as exc:
        return Reported("transient", error=exc)
    except (AuthenticationError, CredentialsMissing) as exc:
        # A credentials problem: the outcome stays safe in the ledger, reconciliation
        # reports it once an operator fixed the settings; Sentry says what to fix.
        log_state(
            "provisioned",
            request_id=request_id,
            event="report-unauthorized",
            level=logging.ERROR,
            error=str(exc),
        )
        sentry_sdk.capture_exception(exc)
        return Reported("unauthorized", error=exc)
    except PermanentError as exc:
        reason = f"reporting failed: {exc}"
        ctx.ledger.mark_dead(request_id, reason, event="report-refused")
        log_state(
            "dead",
            request_id=request_id,
            event="report-refused",
            level=logging.ERROR,
            error=str(exc),
        )
        capture_dead_order(request_id, reason, exc)
        return Reported("dead", error=exc)
    if outcome.waiting:
        # Results Pax8 refused only because it has not counted the attempts yet.
        return Reported("transient", outcome.state, NotAcknowledgedYet(outcome.waiting))
    return Reported("busy" if outcome.busy else "done", outcome.state)


@app.task(name=REPORT, bind=True, queue=REPORT, max_retries=None)
def report_task(self: Task, request_id: str) -> str:
    """Report ``request_id``'s outcome; retry Pax8's transient errors within the budget."""
    with requeue_on_outage(lambda: f"request_id={request_id} {REPORT}"):
        return _report(self, request_id)


def _report(self: Task, request_id: str) -> str:
    ctx = context()
    settings = ctx.settings
    retries = self.request.retries
    result = report_once(ctx, request_id, self.request.id)
    if result.kind == "busy":
        # Another report run holds this request; look again shortly for what it missed.
        raise self.retry(countdown=2.0, max_retries=None)
    if result.kind != "transient":
        return result.state or result.kind
    if retries >= settings.report_max_retries:
        # Not dead: the outcome is safe in the ledger; reconciliation reports it later.
        log_state(
            "provisioned",
            request_id=request_id,
            event="report-deferred",
            level=logging.WARNING,
            error=str(result.error),
            retries=retries,
        )
        return "deferred"
    delay = backoff_delay(
        retries,
        settings.retry_backoff_seconds,
        settings.retry_backoff_max_seconds,
        getattr(result.error, "retry_after", None),
        limit=settings.max_countdown_seconds,
    )
    log.warning(
        "request_id=%s report failed (%s); retry %d in %.1fs",
        request_id,
        result.error,
        retries + 1,
        delay,
    )
    raise self.retry(countdown=delay, max_retries=None) from result.error
