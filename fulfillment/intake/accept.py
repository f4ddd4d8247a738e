"""Record a notification in the ledger and enqueue what it calls for.

Shared by the receiver (a webhook arrived), reconciliation (a webhook was lost) and the
operator's replay, so all three enqueue an order the same way (:func:`enqueue`). The record
is marked ``queued`` only after the publish succeeded: if Redis fails in between, the
record stays ``received`` and the next delivery (Pax8 retries non-2xx answers) enqueues it.

The order's route is decided here, once (:mod:`fulfillment.intake.routing`), and its task
goes to that route's queue; a record kept with another route (the routes file changed since
it was recorded) is enqueued on the route it has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from config.routes import Routes
from fulfillment.intake.publisher import Publisher
from fulfillment.intake.routing import routed
from fulfillment.ledger import Ledger, Notice
from fulfillment.ledger.events import log_state
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.states import Accepted, State


@dataclass(frozen=True)
class Intake:
    """What accepting one notification did."""

    action: Accepted
    previous: State | None


def accept(ledger: Ledger, publisher: Publisher, notice: Notice, routes: Routes) -> Intake:
    """Record ``notice`` and enqueue its task on its route's queue; raises if Redis or the
    broker fails.

    With a publisher that can build the raw message, recording and enqueueing are one
    atomic script (action ``queued``); otherwise the task is published after the script
    (action ``provision``) and the record marked queued once that succeeded.
    """
    notice = routed(routes, notice)
    ref = notice.ref
    message = publisher.provision_message(ref, notice.type, notice.detail_id, notice.route)
    change = ledger.accept(notice, message)
    if change.action is Accepted.REROUTE:
        # Recorded with another route: it stays there (one more round trip, only after the
        # routes file changed while the order was in flight).
        notice = dataclasses.replace(notice, route=change.route)
        message = publisher.provision_message(ref, notice.type, notice.detail_id, notice.route)
        change = ledger.accept(notice, message)
    if change.action is Accepted.PROVISION:
        enqueue(ledger, publisher, ref, notice.type, notice.detail_id, notice.route)
    if change.action in (Accepted.PROVISION, Accepted.QUEUED):
        log_state(
            State.QUEUED,
            ref=ref,
            attempt_id=notice.attempt_id,
            request_type=notice.type,
            simulation=notice.simulation,
            event="enqueued",
            source=notice.source,
            route=notice.route,
        )
    elif change.action is Accepted.REPORT:
        publisher.report(ref)
    return Intake(change.action, change.previous)


def enqueue(
    ledger: Ledger,
    publisher: Publisher,
    ref: Ref,
    request_type: str,
    detail_id: str,
    route: str,
) -> None:
    """Publish the per-type task for ``ref``'s ``detail_id`` on ``route``'s queue (the route
    the record was kept with), then mark the record ``queued``.

    In that order: a publish that fails leaves the record ``received``, so it is enqueued
    again (by the next delivery, or by reconciliation once it is stuck); marked first, it
    would sit ``queued`` with no message until reconciliation found it.
    """
    publisher.provision(ref, request_type, detail_id, route)
    ledger.mark_queued(ref, detail_id)
