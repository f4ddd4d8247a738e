"""Provision one (request, detail) through the vendor adapter and record the outcome.

The task calls :func:`provision` and turns the returned :class:`Step` into Celery terms
(report, retry with a countdown, or nothing). The adapter's outcome maps to:

* :class:`~vendors.base.Provisioned` → ``provisioned`` (then report ``Success``)
* :class:`~vendors.errors.PermanentVendorError` → ``failed`` (then report ``Fail``)
* :class:`~vendors.errors.TransientVendorError` (or a ``transient`` exception such as the
  task's soft time limit) → back to ``queued`` and a retry with backoff, until the budget
  is spent → ``dead``
* any other exception (a bug in the adapter) → ``dead`` at once, nothing reported
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from fulfillment.backoff import backoff_delay
from fulfillment.events import log_state
from fulfillment.ledger import Ledger
from fulfillment.orders import order_from_record
from vendors.errors import PermanentVendorError, TransientVendorError
from vendors.loader import Adapters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying, and how a claim expires."""

    max_retries: int
    backoff_base: float
    backoff_cap: float
    lease_seconds: float
    max_claims: int
    countdown_limit: float | None = None


@dataclass(frozen=True)
class Step:
    """What the task should do next."""

    kind: Literal["report", "retry", "dead", "skip"]
    reason: str = ""
    countdown: float = 0.0
    error: BaseException | None = None


def provision(
    ledger: Ledger,
    adapters: Adapters,
    request_id: str,
    detail_id: str,
    task_id: str,
    policy: RetryPolicy,
    transient: tuple[type[BaseException], ...] = (),
) -> Step:
    """Claim, call the vendor once, store the outcome; see the module docstring."""
    claim = ledger.claim(request_id, detail_id, task_id, policy.lease_seconds, policy.max_claims)
    if claim.action == "done":
        if claim.previous == "reported":
            return Step("skip", "already reported")
        return Step("report", "outcome stored earlier")
    if claim.action == "dead_now":
        record = ledger.get(request_id)
        reason = record.error if record else "lost with its worker too often"
        log_state("dead", record, event="worker-lost", level=logging.ERROR, error=reason)
        return Step("dead", reason)
    if claim.action != "claimed":
        log.info(
            "request=%s detail=%s: nothing to do (%s, %s)",
            request_id,
            detail_id,
            claim.action,
            claim.previous,
        )
        return Step("skip", f"{claim.action} ({claim.previous})")

    record = ledger.get(request_id)
    if record is None:
        return Step("skip", "record vanished")
    retryable: tuple[type[BaseException], ...] = (TransientVendorError, *transient)
    log_state("provisioning", record, event="claimed", task=task_id)
    try:
        order = order_from_record(record)
        adapter = adapters.for_order(order.is_simulation)
        result = adapter.handle(order)
        external_ids = result.external_ids()
    except PermanentVendorError as exc:
        change = ledger.finish(request_id, detail_id, task_id, "Fail", message=exc.message)
        if change.action != "ok":
            return Step("skip", f"claim lost before the outcome was stored ({change.previous})")
        log_state("failed", record, event="vendor-refused", error=exc.message)
        return Step("report", exc.message)
    except retryable as exc:
        message = str(exc) or type(exc).__name__
        if record.retries >= policy.max_retries:
            reason = f"vendor still failing after {record.retries} retries: {message}"
            ledger.mark_dead(request_id, reason, task_id, event="retries-exhausted")
            log_state("dead", record, event="retries-exhausted", level=logging.ERROR, error=reason)
            return Step("dead", reason, error=exc)
        retry_after = getattr(exc, "retry_after", None)
        delay = backoff_delay(
            record.retries,
            policy.backoff_base,
            policy.backoff_cap,
            retry_after,
            limit=policy.countdown_limit,
        )
        ledger.release_for_retry(request_id, detail_id, task_id, message)
        log_state(
            "queued",
            record,
            event="retry",
            level=logging.WARNING,
            error=message,
            retry=record.retries + 1,
            countdown=round(delay, 2),
        )
        return Step("retry", message, countdown=delay)
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not loop or report Fail
        reason = f"adapter error: {type(exc).__name__}: {exc}"
        ledger.mark_dead(request_id, reason, task_id, event="adapter-error")
        log_state("dead", record, event="adapter-error", level=logging.ERROR, error=reason)
        return Step("dead", reason, error=exc)

    change = ledger.finish(request_id, detail_id, task_id, "Success", external_ids, result.metadata)
    if change.action != "ok":
        return Step("skip", f"claim lost before the outcome was stored ({change.previous})")
    log_state("provisioned", record, event="vendor-ok", external_ids=external_ids)
    return Step("report")
