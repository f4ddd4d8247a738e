"""Replay: send an order through the worker again, the safe way for its state.

The rules of ``fulfill replay`` and of the console's Replay button (both call :func:`replay`):

=====================  ==========================================================
state                  what a replay does
=====================  ==========================================================
dead                   back to ``received``, the per-type task enqueued (same
                       Idempotency-Key: a vendor call that did happen is not repeated)
failed                 the same with a new generation: a deliberate new try gets a
                       new Idempotency-Key, so the vendor really runs it again
provisioned            the outcome is stored, only the report is enqueued
reported, Fail         Pax8 wants a new attempt for a new result: one is created
                       (``POST .../attempts``), then as ``failed``
reported, Success      refused (the order is done) unless ``--force``, then as Fail
received/queued/       refused: it is in flight, a replay would only race it
provisioning
=====================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fulfillment.intake.accept import enqueue
from fulfillment.intake.publisher import Publisher
from fulfillment.ledger import AmbiguousId, Ledger, Record
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.states import IN_FLIGHT, Changed, State
from pax8.client import Pax8Client
from pax8.models import ResultStatus


class ReplayRefused(Exception):
    """The order cannot be replayed in its state; the message says why."""


@dataclass(frozen=True)
class Replayed:
    """What a replay did."""

    request_id: str
    previous: str
    action: str
    message: str
    attempt_id: str | None = None
    generation: int = 0


def replay(
    ledger: Ledger,
    publisher: Publisher,
    pax8: Callable[[bool], Pax8Client],
    which: Ref | str,
    force: bool = False,
) -> Replayed:
    """Replay ``which`` (a ref, or an id recorded in one scope: see the module docstring);
    raises :class:`ReplayRefused`."""
    try:
        record = ledger.get(which)
    except AmbiguousId as exc:
        raise ReplayRefused(f"{exc}: pass --scope") from None
    if record is None:
        raise ReplayRefused(f"no order {which} in the ledger")
    request_id = record.id
    state = record.state
    if state in IN_FLIGHT:
        raise ReplayRefused(
            f"{request_id} is in flight ({state}): the worker has it; replaying would race it. "
            "Wait for it (fulfill status), or let reconciliation requeue it if it is stuck."
        )
    if state is State.DEAD:
        generation = _restart(ledger, publisher, record, state, new_generation=False)
        return Replayed(
            request_id,
            state,
            "requeued",
            f"{record.type} {request_id} was dead; enqueued it again (same Idempotency-Key)",
            generation=generation,
        )
    if state is State.FAILED:
        generation = _restart(ledger, publisher, record, state, new_generation=True)
        return Replayed(
            request_id,
            state,
            "new-generation",
            f"{record.type} {request_id} had failed ({record.error or 'no message'}); enqueued "
            f"a new try (generation {generation}, a new Idempotency-Key)",
            generation=generation,
        )
    if state is State.PROVISIONED:
        publisher.report(record.ref)
        return Replayed(
            request_id,
            state,
            "report",
            f"{record.type} {request_id} has its outcome ({record.outcome}) stored; enqueued "
            "the report to Pax8",
            generation=record.generation,
        )
    if state is State.REPORTED:
        return _replay_reported(ledger, publisher, pax8, record, force)
    raise ReplayRefused(f"{request_id} is in an unknown state {state!r}")


def _replay_reported(
    ledger: Ledger,
    publisher: Publisher,
    pax8: Callable[[bool], Pax8Client],
    record: Record,
    force: bool,
) -> Replayed:
    if record.outcome is not ResultStatus.FAIL and not force:
        raise ReplayRefused(
            f"{record.id} was reported {record.outcome or 'done'} already; a replay would run "
            "it at the vendor again. Pass --force to do that deliberately."
        )
    if record.source != "pax8":
        raise ReplayRefused(
            f"{record.id} came from {record.source}, which re-sends its own requests; "
            "nothing to ask Pax8 for"
        )
    attempt = pax8(record.simulation).create_attempt(record.id, simulation=record.simulation)
    detail = attempt.provision_detail_id or record.detail_id
    if detail != record.detail_id:
        raise ReplayRefused(
            f"Pax8 has a newer detail ({detail}) for {record.id} than the ledger "
            f"({record.detail_id}); created attempt {attempt.id}: run fulfill reconcile to "
            "provision the new detail"
        )
    ledger.add_attempt(record.ref, attempt.id, record.detail_id)
    generation = _restart(ledger, publisher, record, State.REPORTED, new_generation=True)
    return Replayed(
        record.id,
        "reported",
        "new-attempt",
        f"{record.type} {record.id} was reported {record.outcome}; created Pax8 attempt "
        f"{attempt.id} and enqueued a new try (generation {generation}, a new "
        "Idempotency-Key)",
        attempt_id=attempt.id,
        generation=generation,
    )


def _restart(
    ledger: Ledger, publisher: Publisher, record: Record, state: State, new_generation: bool
) -> int:
    """Reset the record from ``state`` and enqueue its task; the generation after."""
    change = ledger.reset(
        record.ref,
        event="replay",
        note="operator replay" + (" (new generation)" if new_generation else ""),
        new_generation=new_generation,
        only_from=(state,),
    )
    if change.action is not Changed.OK:
        raise ReplayRefused(
            f"{record.id} changed from {state} to {change.previous or 'nothing'} meanwhile; "
            "look again with fulfill status"
        )
    enqueue(ledger, publisher, record.ref, record.type, record.detail_id, record.route)
    return record.generation + (1 if new_generation else 0)
