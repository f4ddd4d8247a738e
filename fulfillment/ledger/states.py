"""The ledger's states and what its transitions can answer, as enums mypy checks.

::

    received → queued → provisioning → provisioned | failed → reported
                                     ↘ dead (retry budget spent, or the task kept
                                             killing its worker)

An order the intake records and enqueues in one script (``lua/accept.lua``, with the task
message the Celery publisher builds) goes straight to ``queued``: no one could ever have
seen it ``received``, and its history keeps both steps. ``received`` is the state of an
order whose task the caller publishes after recording it (a publisher that cannot build the
message): it stays there if that publish fails, for the next delivery or reconciliation.

Each ledger script answers with one of the actions below; the Lua scripts spell the same
strings (``fulfillment/ledger/lua/``), and :class:`State` is listed in their order in
``common.lua`` (a unit test checks both).
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Where a provision request is."""

    RECEIVED = "received"
    QUEUED = "queued"
    PROVISIONING = "provisioning"
    PROVISIONED = "provisioned"
    FAILED = "failed"
    REPORTED = "reported"
    DEAD = "dead"


STATES = tuple(State)
"""Every state, in the order ``lua/common.lua`` lists them (its state sets' order)."""

IN_FLIGHT = frozenset({State.RECEIVED, State.QUEUED, State.PROVISIONING})
"""The worker has (or will have) the order: nothing to enqueue again."""

FINISHED = frozenset({State.PROVISIONED, State.FAILED})
"""The vendor's outcome is stored; a result is owed to Pax8."""


class AttemptState(StrEnum):
    """Where one attempt's ProvisionResult is."""

    PENDING = "pending"  # owed
    POSTING = "posting"  # owed; a POST may have reached Pax8 (look before posting again)
    REPORTED = "reported"
    SUPERSEDED = "superseded"  # for a detail a newer one replaced: its result is moot
    REJECTED = "rejected"  # Pax8 refused its result for good


OWED = frozenset({AttemptState.PENDING, AttemptState.POSTING})


class Accepted(StrEnum):
    """What recording a notification calls for."""

    QUEUED = "queued"  # the task message was pushed by the same script
    PROVISION = "provision"  # publish the per-type task (then mark it queued)
    REPORT = "report"  # a new attempt for a finished detail: enqueue a report
    INFLIGHT = "inflight"  # already queued or running; the new attempt is noted
    DUPLICATE = "duplicate"  # seen before, nothing to do
    REROUTE = "reroute"  # recorded with another route: accept again with that one


class Claimed(StrEnum):
    """What an attempt to claim a record for provisioning found."""

    CLAIMED = "claimed"  # go ahead
    DONE = "done"  # the detail has an outcome already (report it)
    BUSY = "busy"  # another live task holds it
    WAIT = "wait"  # an earlier vendor call may still be running: retry after its deadline
    STALE = "stale"  # a newer detail replaced this one
    DEAD = "dead"  # given up on earlier
    DEAD_NOW = "dead_now"  # given up by this call: the task kept dying with its worker
    MISSING = "missing"  # no record
    REROUTE = "reroute"  # recorded with another route than expected: claim with that one


class Changed(StrEnum):
    """What a transition that needs the claim (or a state) did."""

    OK = "ok"
    STALE = "stale"  # the claim was lost, or another task holds it
    REFUSED = "refused"  # the record is not in a state this transition allows
    MISSING = "missing"  # no record
