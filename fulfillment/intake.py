"""Record a notification in the ledger and enqueue what it calls for.

Shared by the receiver (a webhook arrived), reconciliation (a webhook was lost) and the
operator's replay, so all three enqueue an order the same way. The record is marked
``queued`` only after the publish succeeded: if Redis fails in between, the record
stays ``received`` and the next delivery (Pax8 retries non-2xx answers) enqueues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fulfillment.events import log_state
from fulfillment.ledger import Ledger, Notice
from fulfillment.states import Accepted, State


class Publisher(Protocol):
    """Sends tasks by name (the receiver never imports task code)."""

    def provision(
        self, request_type: str, request_id: str, detail_id: str, simulation: bool
    ) -> None:
        """Enqueue the per-type provisioning task."""

    def provision_message(
        self, request_type: str, request_id: str, detail_id: str, simulation: bool
    ) -> tuple[str, str] | None:
        """(queue, raw message) of that task, for an atomic enqueue by the ledger; or None."""

    def report(self, request_id: str, countdown: float | None = None) -> None:
        """Enqueue the report task."""


@dataclass(frozen=True)
class Intake:
    """What accepting one notification did."""

    action: Accepted
    previous: State | None


def accept(ledger: Ledger, publisher: Publisher, notice: Notice) -> Intake:
    """Record ``notice`` and enqueue its task; raises if Redis or the broker fails.

    With a publisher that can build the raw message, recording and enqueueing are one
    atomic script (action ``queued``); otherwise the task is published after the script
    (action ``provision``) and the record marked queued once that succeeded.
    """
    message = publisher.provision_message(
        notice.type, notice.request_id, notice.detail_id, notice.simulation
    )
    change = ledger.accept(notice, message)
    if change.action is Accepted.PROVISION:
        publisher.provision(notice.type, notice.request_id, notice.detail_id, notice.simulation)
        ledger.mark_queued(notice.request_id, notice.detail_id)
    if change.action in (Accepted.PROVISION, Accepted.QUEUED):
        log_state(
            State.QUEUED,
            request_id=notice.request_id,
            attempt_id=notice.attempt_id,
            request_type=notice.type,
            simulation=notice.simulation,
            event="enqueued",
            source=notice.source,
        )
    elif change.action is Accepted.REPORT:
        publisher.report(notice.request_id)
    return Intake(change.action, change.previous)
