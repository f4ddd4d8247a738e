"""Wait on Redis until a record's outcome is known (the receiver's answer to CloudBlue).

The scripts that settle an outcome (``finish``, ``dead``, ``claim`` when it gives up) push
a token onto the record's outcome list; a waiter blocks on that list with ``BLPOP``, which
costs it a Redis connection and a greenlet while it waits but no CPU and no polling. It
blocks in steps shorter than the Redis socket timeout and reads the record after each
wake-up or step: the record is the truth, the token only wakes, so a token missed (taken by
a concurrent waiter) or stale (left from before a replay) costs at most one step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fulfillment.ledger import Ledger, Record
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.states import State

MIN_STEP = 0.01
"""Redis reads a BLPOP timeout in milliseconds and blocks forever on 0: never ask for less."""

_OUTCOMES = frozenset({State.PROVISIONED, State.FAILED, State.REPORTED})


def settled(record: Record) -> bool:
    """Whether ``record`` has its final answer: the vendor's outcome for its current
    detail, or ``dead`` (given up on until an operator replays it)."""
    if record.state is State.DEAD:
        return True
    return (
        record.state in _OUTCOMES
        and record.outcome is not None
        and record.outcome_detail_id == record.detail_id
    )


def await_outcome(
    ledger: Ledger,
    ref: Ref,
    timeout: float,
    step: float,
    clock: Callable[[], float] = time.monotonic,
) -> Record | None:
    """The record once :func:`settled`, or as it is when ``timeout`` seconds passed.

    ``step`` bounds one ``BLPOP`` (keep it below the client's socket timeout). Redis errors
    propagate (the caller answers 503: the order is recorded, a retry finds it).
    """
    deadline = clock() + timeout
    while True:
        record = ledger.get(ref)
        if record is not None and settled(record):
            return record
        remaining = deadline - clock()
        if remaining <= 0:
            return record
        if ledger.wait_for_outcome(ref, max(MIN_STEP, min(step, remaining))):
            record = ledger.get(ref)
            if record is not None and settled(record):
                # Concurrent waiters (a retry that came while the first call waits) each
                # need a token: hand this one on rather than leave them to their step.
                ledger.wake_next(ref)
                return record
