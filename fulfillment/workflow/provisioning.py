"""Provision one (request, detail) through the vendor adapter and record the outcome.

:func:`provision` claims the record, calls the adapter once and stores what it answered;
:func:`fulfil` is what the per-type task runs: :func:`provision`, then the report right
away in the same task (one task per order when all goes well). The adapter's answer maps to:

* :class:`~vendors.base.Provisioned` → ``provisioned`` (then report ``Success``)
* :class:`~vendors.errors.PermanentVendorError` → ``failed`` (then report ``Fail``)
  (a :class:`~vendors.errors.VendorContractError` also raises an alert: it is a bug)
* :class:`~vendors.errors.TransientVendorError` (or a ``transient`` exception such as the
  task's soft time limit) → back to ``queued`` and a retry with backoff, until the budget
  is spent → ``dead`` (a :class:`~vendors.errors.VendorMisconfigured` the same way, counted
  by its problem and alerted the first time an order meets it: the fix is an operator's)
* any other exception (a bug in the adapter) → ``dead`` at once, nothing reported

The claim records until when the call it starts may still be running (the adapter's
:attr:`~vendors.base.VendorAdapter.call_deadline_seconds`). A call that ended without an
answer (a timeout, the soft limit, a worker killed mid-call) may go on at the vendor, and a
vendor that stores its idempotency key only when it finishes would do the work twice for a
repeat that arrives first: so no repeat starts before that deadline. The claim answers
``wait`` and the task retries with the time left as its countdown; no worker sleeps.

Every claim carries its own token, and each write after the vendor call presents it: a
task whose claim was taken over meanwhile (its worker was cut off from Redis past the
visibility timeout, and the message went to another) stores nothing, reports nothing and
retries nothing. With ``REDIS_WAIT_REPLICAS`` a claim the replicas did not confirm raises
:class:`~fulfillment.runtime.clients.NotReplicated` before any vendor call (the task tries later).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fulfillment.intake.routing import UNROUTED, Unrouted
from fulfillment.ledger import Change, Record
from fulfillment.ledger.events import log_state
from fulfillment.ledger.locks import RedisLock
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.states import Changed, Claimed, State
from fulfillment.names import REPORT
from fulfillment.runtime import metrics
from fulfillment.usage.registry import note_provisioned
from fulfillment.workflow.capacity import Slot
from fulfillment.workflow.outcomes import Next, Outcome
from fulfillment.workflow.reporting import report
from fulfillment.workflow.routes import adapter_of, claim_route, hand_off, named, routed_order
from pax8.models import ResultStatus
from vendors.base import Order, Provisioned
from vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    VendorContractError,
    VendorMisconfigured,
    VendorNoAnswer,
)

if TYPE_CHECKING:
    from fulfillment.services import Services

log = logging.getLogger(__name__)


def provision(
    services: Services,
    ref: Ref,
    detail_id: str,
    task_id: str,
    transient: tuple[type[BaseException], ...] = (),
    route: str | None = None,
    *,
    worker: str = "",
    report_next: bool = False,
) -> Outcome:
    """Claim, call the vendor once, store the outcome; see the module docstring.

    ``route`` is the route the task's message carries (``None``: a message queued before
    routes, or for a record that has none yet; the record says, :func:`claim_route`).
    ``worker``: the id of the worker process running it (its heartbeat's), which the claim
    records so operators see who holds the order and whether it is alive.
    ``report_next``: the task reports right after (:func:`fulfil`), so storing the outcome
    also starts the report run, in the same round trip (the outcome's ``report``).
    """
    ledger, policies = services.ledger, services.policies
    token = claim_token(task_id)
    expected = claim_route(services, ref, route)
    handed = hand_off(services, ref, expected, detail_id, route)
    if handed is not None:
        return handed
    slot = Slot(services, ref, token)
    try:
        for _ in range(3):
            target = expected.target
            now, call_seconds = time.time(), _call_seconds(services, target, ref.simulation)
            wait = slot.take(target, call_seconds)
            if wait > 0:
                # Nothing was claimed: the message goes back to the queue, spending no retry.
                reason = named(services, target, "waiting for a vendor-call slot")
                return Outcome.retry(wait, reason)
            claim = ledger.claim(
                ref,
                detail_id,
                task_id,
                policies.lease_seconds,
                policies.max_claims,
                call_seconds=call_seconds,
                now=now,
                token=token,
                route=expected.recorded,
                decided=expected.decided,
                worker=worker,
            )
            if claim.action is not Claimed.REROUTE:
                break
            slot.release()
            # The record was kept with another route than the message says: that one it is.
            expected = claim_route(services, ref, claim.route or None)
        else:
            return Outcome.retry(1.0, "the order's route changed while it was being claimed")
        report_lock = (
            services.ledger.report_lock(ref, services.policies.lease_seconds, owner=task_id)
            if report_next
            else None
        )
        return _claimed(
            services, ref, detail_id, task_id, transient, token, claim, slot,
            now + call_seconds, report_lock,
        )  # fmt: skip
    finally:
        slot.release()


def _claimed(
    services: Services,
    ref: Ref,
    detail_id: str,
    task_id: str,
    transient: tuple[type[BaseException], ...],
    token: str,
    claim: Change[Claimed],
    slot: Slot,
    call_until: float,
    report_lock: RedisLock | None = None,
) -> Outcome:
    """What :func:`provision` does once the claim has answered: wait, nothing, or the call
    (``report_lock``: the report run to start with the outcome, see :func:`provision`)."""
    ledger, policies = services.ledger, services.policies
    if claim.action is Claimed.WAIT:
        countdown = _bounded(services, claim.wait)
        log_state(
            claim.previous,
            ref=ref,
            event="wait-for-earlier-call",
            level=logging.WARNING,
            countdown=round(countdown, 2),
        )
        return Outcome.retry(
            countdown, f"an earlier vendor call may still be running for {claim.wait:.1f}s"
        )
    if claim.action is Claimed.DONE:
        if claim.previous is State.REPORTED:
            return Outcome.done("already reported", State.REPORTED)
        return Outcome(Next.REPORT, "outcome stored earlier")
    if claim.action is Claimed.DEAD_NOW:
        metrics.DEAD_ORDERS.labels("worker-lost").inc()
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

    # The claim returned the record as it left it (one round trip for both).
    record = claim.record or ledger.get(ref)
    if record is None:
        return Outcome.done("record vanished")
    if record.route == UNROUTED:
        return _refuse_unrouted(services, record, detail_id, token, report_lock)
    retryable: tuple[type[BaseException], ...] = (TransientVendorError, *transient)
    log_state(State.PROVISIONING, record, event="claimed", task=task_id)
    backend = record.route
    call = _VendorCall(record.type, backend)
    try:
        order = routed_order(services, record)
        adapter = adapter_of(services, record)
        try:
            result = call.run(adapter.handle, order)
        finally:
            slot.release()  # the call has ended: the next order of the backend may start
        external_ids = result.external_ids()
    except PermanentVendorError as exc:
        call.done(metrics.REFUSED)
        change = ledger.finish(
            ref, detail_id, token, ResultStatus.FAIL, message=exc.message, report=report_lock
        )
        if change.action is not Changed.OK:
            return _claim_lost(ref, "the outcome was stored", change.previous)
        bug = isinstance(exc, VendorContractError)
        log_state(
            State.FAILED,
            record,
            event="vendor-contract-error" if bug else "vendor-refused",
            # The alert is its Sentry event (tasks.base); an ERROR line would make a second.
            level=logging.WARNING if bug else logging.INFO,
            error=exc.message,
        )
        return Outcome(
            Next.REPORT,
            exc.message,
            state=State.FAILED,
            error=exc if bug else None,
            alert=bug,
            backend=backend,
            report=change.report,
        )
    except retryable as exc:
        message = named(services, backend, str(exc) or type(exc).__name__)
        misconfigured = isinstance(exc, VendorMisconfigured)
        call.done(metrics.MISCONFIGURED if misconfigured else metrics.TRANSIENT)
        if isinstance(exc, VendorMisconfigured):
            metrics.VENDOR_MISCONFIGURED.labels(exc.problem, metrics.backend(backend)).inc()
        # Only an answer ends the call; after anything else it may still be running at the
        # vendor, and the retry must not reach it before the call's deadline.
        answered = isinstance(exc, TransientVendorError) and not isinstance(exc, VendorNoAnswer)
        if policies.provision.exhausted(record.retries):
            reason = f"vendor still failing after {record.retries} retries: {message}"
            change = ledger.mark_dead(ref, reason, token, event="retries-exhausted")
            if change.action is not Changed.OK:
                return _claim_lost(ref, "the order was given up", change.previous)
            metrics.DEAD_ORDERS.labels("retries-exhausted").inc()
            log_state(
                State.DEAD, record, event="retries-exhausted", level=logging.ERROR, error=reason
            )
            return dataclasses.replace(Outcome.dead(reason, exc), backend=backend)
        delay = policies.provision.delay(record.retries, getattr(exc, "retry_after", None))
        if not answered:
            delay = _bounded(services, max(delay, call_until - time.time()))
        change = ledger.release_for_retry(ref, detail_id, token, message, call_ended=answered)
        if change.action is not Changed.OK:
            return _claim_lost(ref, "the retry was recorded", change.previous)
        metrics.RETRIES.labels(metrics.PROVISION).inc()
        log_state(
            State.QUEUED,
            record,
            event="vendor-misconfigured" if misconfigured else "retry",
            level=logging.WARNING,
            error=message,
            retry=record.retries + 1,
            countdown=round(delay, 2),
        )
        if misconfigured and record.error != message:
            # Sentry hears of it once per order and problem, not on every retry.
            alert = Outcome.retry(delay, message, exc)
            return dataclasses.replace(alert, alert=True, backend=backend)
        return Outcome.retry(delay, message)
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not loop or report Fail
        call.done(metrics.ERROR)
        reason = f"adapter error: {type(exc).__name__}: {exc}"
        change = ledger.mark_dead(ref, reason, token, event="adapter-error")
        if change.action is not Changed.OK:
            return _claim_lost(ref, "the order was given up", change.previous)
        metrics.DEAD_ORDERS.labels("adapter-error").inc()
        log_state(State.DEAD, record, event="adapter-error", level=logging.ERROR, error=reason)
        return dataclasses.replace(Outcome.dead(reason, exc), backend=backend)

    call.done(metrics.SUCCESS)
    # Before the outcome is stored: a crash in between repeats both on redelivery.
    note_provisioned(services, order, result)
    change = ledger.finish(
        ref, detail_id, token, ResultStatus.SUCCESS, external_ids, result.metadata,
        report=report_lock,
    )  # fmt: skip
    if change.action is not Changed.OK:
        return _claim_lost(ref, "the outcome was stored", change.previous)
    log_state(State.PROVISIONED, record, event="vendor-ok", external_ids=external_ids)
    return Outcome(Next.REPORT, state=State.PROVISIONED, report=change.report)


class _VendorCall:
    """Times one adapter call and counts its outcome (once, whichever way it ended), by
    request type and backend."""

    def __init__(self, request_type: str, backend: str) -> None:
        self.type = request_type
        self.backend = metrics.backend(backend)
        self.seconds: float | None = None

    def run(self, handle: Callable[[Order], Provisioned], order: Order) -> Provisioned:
        started = time.perf_counter()
        try:
            return handle(order)
        finally:
            self.seconds = time.perf_counter() - started

    def done(self, outcome: str) -> None:
        if self.seconds is None:
            return  # the order could not be built: no vendor call was made
        metrics.VENDOR_CALLS.labels(self.type, outcome, self.backend).inc()
        metrics.VENDOR_DURATION.labels(self.type, self.backend).observe(self.seconds)
        self.seconds = None


def _refuse_unrouted(
    services: Services, record: Record, detail_id: str, token: str, report: RedisLock | None
) -> Outcome:
    """An order no route takes: one ``Fail`` with the reason intake kept (a message a partner
    can act on), and an alert for the vendor; no adapter is called."""
    message = record.route_refusal or "No backend of this vendor takes this order."
    change = services.ledger.finish(
        record.ref, detail_id, token, ResultStatus.FAIL, message=message, report=report
    )
    if change.action is not Changed.OK:
        return _claim_lost(record.ref, "the outcome was stored", change.previous)
    metrics.UNROUTED_ORDERS.labels(record.source).inc()
    log_state(State.FAILED, record, event="no-route", level=logging.WARNING, error=message)
    return Outcome(
        Next.REPORT, message, state=State.FAILED, error=Unrouted(message), alert=True,
        report=change.report,
    )  # fmt: skip


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
    route: str | None = None,
    *,
    worker: str = "",
) -> Outcome:
    """Provision, then report in the same task; a report Pax8 cannot take now is handed to
    ``fulfillment.report`` (its own backoff and budget). RETRY means: provision again. An
    alert the provisioning raised (a vendor contract error) survives the report."""
    outcome = provision(
        services, ref, detail_id, task_id, transient, route, worker=worker, report_next=True
    )
    if outcome.next is not Next.REPORT:
        return outcome
    reported = report(
        services, ref, owner=task_id, transient=transient, counted=False, started=outcome.report
    )
    if reported.next is Next.RETRY:
        log.info(
            "request_id=%s not reported yet (%s): %s retries it in %.1fs",
            ref,
            reported.reason,
            REPORT,
            reported.countdown,
        )
        services.publisher.report(ref, countdown=reported.countdown)
        reported = Outcome.done(f"report handed to {REPORT}", reported.state)
    if outcome.alert and reported.next is Next.DONE:
        reported = dataclasses.replace(
            reported, error=outcome.error, alert=True, backend=outcome.backend
        )
    return reported


def _call_seconds(services: Services, route: str, simulation: bool) -> float:
    """How long the vendor call a claim starts may still be running: the route's (or its
    adapter's) own deadline, or the task's hard limit when neither says."""
    try:
        seconds = services.adapters.call_deadline(route, simulation)
    except Exception:  # noqa: BLE001 - an adapter that cannot start (or a route the routes
        seconds = None  # file lost) is answered once claimed
    return services.policies.call_deadline_seconds if seconds is None else seconds


def _bounded(services: Services, countdown: float) -> float:
    """``countdown``, at most the longest a held retry may wait (the claim waits again)."""
    limit = services.policies.provision.limit
    return max(0.0, countdown if limit is None else min(countdown, limit))
