"""Provision one (request, detail) through the vendor adapter and record the outcome.

:func:`provision` claims the record, calls the adapter once and stores what it answered;
:func:`fulfil` is what the per-type task runs: :func:`provision`, then the report right
away in the same task (one task per order when all goes well). The adapter's answer maps to:

* :class:`~vendors.base.Provisioned` → ``provisioned`` (then report ``Success``)
* :class:`~vendors.errors.PermanentVendorError` → ``failed`` (then report ``Fail``)
* :class:`~vendors.errors.TransientVendorError` (or a ``transient`` exception such as the
  task's soft time limit) → back to ``queued`` and a retry with backoff, until the budget
  is spent → ``dead``
* any other exception (a bug in the adapter) → ``dead`` at once, nothing reported

Every claim carries its own token, and each write after the vendor call presents it: a
task whose claim was taken over meanwhile (its worker was cut off from Redis past the
visibility timeout, and the message went to another) stores nothing, reports nothing and
retries nothing. With ``REDIS_WAIT_REPLICAS`` a claim the replicas did not confirm raises
:class:`~fulfillment.clients.NotReplicated` before any vendor call (the task tries later).
"""

from __future__ import annotations

import logging
import secrets

from fulfillment.events import log_state
from fulfillment.names import REPORT
from fulfillment.orders import order_from_record
from fulfillment.outcomes import Next, Outcome
from fulfillment.refs import Ref
from fulfillment.reporting import report
from fulfillment.services import Services
from fulfillment.states import Changed, Claimed, State
from pax8.models import ResultStatus
from vendors.errors import PermanentVendorError, TransientVendorError

log = logging.getLogger(__name__)


def provision(
    services: Services,
    ref: Ref,
    detail_id: str,
    task_id: str,
    transient: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Claim, call the vendor once, store the outcome; see the module docstring."""
    ledger, policies = services.ledger, services.policies
    token = claim_token(task_id)
    claim = ledger.claim(
        ref, detail_id, task_id, policies.lease_seconds, policies.max_claims, token=token
    )
    if claim.action is Claimed.DONE:
        if claim.previous is State.REPORTED:
            return Outcome.done("already reported", State.REPORTED)
        return Outcome(Next.REPORT, "outcome stored earlier")
    if claim.action is Claimed.DEAD_NOW:
        record = ledger.get(ref)
        reason = record.error if record else "lost with its worker too often"
        log_state(State.DEAD, record, event="worker-lost", level=logging.ERROR, error=reason)
        return Outcome.dead(reason)
    if claim.action is not Claimed.CLAIMED:
        log.info(
            "request=%s detail=%s: nothing to do (%s, %s)",
            ref,
            detail_id,
            claim.action,
            claim.previous,
        )
        return Outcome.done(f"{claim.action} ({claim.previous})", claim.previous)

    record = ledger.get(ref)
    if record is None:
        return Outcome.done("record vanished")
    retryable: tuple[type[BaseException], ...] = (TransientVendorError, *transient)
    log_state(State.PROVISIONING, record, event="claimed", task=task_id)
    try:
        order = order_from_record(record)
        adapter = services.adapters.for_order(order.is_simulation)
        result = adapter.handle(order)
        external_ids = result.external_ids()
    except PermanentVendorError as exc:
        change = ledger.finish(ref, detail_id, token, ResultStatus.FAIL, message=exc.message)
        if change.action is not Changed.OK:
            return _claim_lost(ref, "the outcome was stored", change.previous)
        log_state(State.FAILED, record, event="vendor-refused", error=exc.message)
        return Outcome(Next.REPORT, exc.message, state=State.FAILED)
    except retryable as exc:
        message = str(exc) or type(exc).__name__
        if policies.provision.exhausted(record.retries):
            reason = f"vendor still failing after {record.retries} retries: {message}"
            change = ledger.mark_dead(ref, reason, token, event="retries-exhausted")
            if change.action is not Changed.OK:
                return _claim_lost(ref, "the order was given up", change.previous)
            log_state(
                State.DEAD, record, event="retries-exhausted", level=logging.ERROR, error=reason
            )
            return Outcome.dead(reason, exc)
        delay = policies.provision.delay(record.retries, getattr(exc, "retry_after", None))
        change = ledger.release_for_retry(ref, detail_id, token, message)
        if change.action is not Changed.OK:
            return _claim_lost(ref, "the retry was recorded", change.previous)
        log_state(
            State.QUEUED,
            record,
            event="retry",
            level=logging.WARNING,
            error=message,
            retry=record.retries + 1,
            countdown=round(delay, 2),
        )
        return Outcome.retry(delay, message)
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not loop or report Fail
        reason = f"adapter error: {type(exc).__name__}: {exc}"
        change = ledger.mark_dead(ref, reason, token, event="adapter-error")
        if change.action is not Changed.OK:
            return _claim_lost(ref, "the order was given up", change.previous)
        log_state(State.DEAD, record, event="adapter-error", level=logging.ERROR, error=reason)
        return Outcome.dead(reason, exc)

    change = ledger.finish(
        ref, detail_id, token, ResultStatus.SUCCESS, external_ids, result.metadata
    )
    if change.action is not Changed.OK:
        return _claim_lost(ref, "the outcome was stored", change.previous)
    log_state(State.PROVISIONED, record, event="vendor-ok", external_ids=external_ids)
    return Outcome(Next.REPORT, state=State.PROVISIONED)


def claim_token(task_id: str) -> str:
    """A fresh token for one claim by ``task_id`` (the task id first, for operators)."""
    return f"{task_id}/{secrets.token_hex(8)}"


def _claim_lost(ref: Ref, before: str, previous: State | None) -> Outcome:
    """Another delivery took the claim over (or the order moved on) before ``before``:
    this one writes, reports and retries nothing; whoever holds the order now finishes it."""
    log.warning(
        "request_id=%s: claim lost before %s (now %s); this delivery leaves it to its holder",
        ref,
        before,
        previous,
    )
    return Outcome.done(f"claim lost before {before} ({previous})", previous)


def fulfil(
    services: Services,
    ref: Ref,
    detail_id: str,
    task_id: str,
    transient: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Provision, then report in the same task; a report Pax8 cannot take now is handed to
    ``fulfillment.report`` (its own backoff and budget). RETRY means: provision again."""
    outcome = provision(services, ref, detail_id, task_id, transient)
    if outcome.next is not Next.REPORT:
        return outcome
    reported = report(services, ref, owner=task_id, transient=transient, counted=False)
    if reported.next is Next.RETRY:
        log.info(
            "request_id=%s not reported yet (%s): %s retries it in %.1fs",
            ref,
            reported.reason,
            REPORT,
            reported.countdown,
        )
        services.publisher.report(ref, countdown=reported.countdown)
        return Outcome.done(f"report handed to {REPORT}", reported.state)
    return reported
