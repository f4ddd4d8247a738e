"""``fulfillment.report``: post the ProvisionResult(s) a finished request owes Pax8."""

from __future__ import annotations

import logging

import sentry_sdk
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from config.sentry import capture_dead_order
from fulfillment.backoff import backoff_delay
from fulfillment.events import log_state
from fulfillment.names import REPORT
from fulfillment.reporting import report
from pax8.errors import AuthenticationError, CredentialsMissing, PermanentError, TransientError
from tasks.context import context
from tasks.outage import requeue_on_outage
from worker.app import app

log = logging.getLogger(__name__)


@app.task(name=REPORT, bind=True, queue=REPORT, max_retries=None)
def report_task(self: Task, request_id: str) -> str:
    """Report ``request_id``'s outcome; retry Pax8's transient errors within the budget."""
    with requeue_on_outage(lambda: f"request_id={request_id} {REPORT}"):
        return _report(self, request_id)


def _report(self: Task, request_id: str) -> str:
    ctx = context()
    settings = ctx.settings
    retries = self.request.retries
    try:
        outcome = report(
            ctx.ledger,
            ctx.pax8,
            request_id,
            lock_seconds=settings.task_time_limit_seconds + 30,
            owner=self.request.id,
        )
    except (TransientError, SoftTimeLimitExceeded) as exc:
        if retries >= settings.report_max_retries:
            # Not dead: the outcome is safe in the ledger; reconciliation reports it later.
            log_state(
                "provisioned",
                request_id=request_id,
                event="report-deferred",
                level=logging.WARNING,
                error=str(exc),
                retries=retries,
            )
            return "deferred"
        delay = backoff_delay(
            retries,
            settings.retry_backoff_seconds,
            settings.retry_backoff_max_seconds,
            getattr(exc, "retry_after", None),
            limit=settings.max_countdown_seconds,
        )
        log.warning(
            "request_id=%s report failed (%s); retry %d in %.1fs",
            request_id,
            exc,
            retries + 1,
            delay,
        )
        raise self.retry(countdown=delay, max_retries=None) from exc
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
        return "deferred"
    except PermanentError as exc:
        ctx.ledger.mark_dead(request_id, f"reporting failed: {exc}", event="report-refused")
        log_state(
            "dead",
            request_id=request_id,
            event="report-refused",
            level=logging.ERROR,
            error=str(exc),
        )
        capture_dead_order(request_id, f"reporting failed: {exc}", exc)
        return "dead"
    if outcome.busy:
        # Another report run holds this request; look again shortly for what it missed.
        raise self.retry(countdown=2.0, max_retries=None)
    return outcome.state
