"""Read-only views of the ledger for operators: one order in full, the overview, a search.

The CLI (``fulfill status``) and the console show the same things because they call these.
Nothing here writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from config.settings import Settings
from fulfillment.ledger import LedgerReader, Record
from fulfillment.ledger.records import Heartbeat
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import IN_FLIGHT, State

SCAN_LIMIT = 20_000
"""At most this many records are looked at for one page of a filtered search."""

LOST_AFTER = float(Settings.model_fields["worker_lost_after_seconds"].default)
"""``WORKER_LOST_AFTER_SECONDS``'s default: when a worker's heartbeat counts as gone."""


def describe(
    ledger: LedgerReader, which: Ref | str, *, lost_after: float = LOST_AFTER
) -> dict[str, Any] | None:
    """One order: its record summary, attempts and history, and while it is in flight who
    holds it (:func:`holding`; ``lost_after``: ``WORKER_LOST_AFTER_SECONDS``). None if
    unknown; a bare id recorded in several scopes raises
    :class:`~fulfillment.ledger.AmbiguousId`."""
    record = ledger.get(which)
    if record is None:
        return None
    return {
        "record": record.summary() | {"generation": record.generation},
        "holding": holding(ledger, record, lost_after),
        "attempts": [
            {
                "id": attempt.id,
                "detailId": attempt.detail_id,
                "status": attempt.status,
                "at": attempt.at,
                "resultId": attempt.result_id,
            }
            for attempt in ledger.attempts(record.ref)
        ],
        "history": ledger.history(record.ref),
    }


def holding(
    ledger: LedgerReader, record: Record, lost_after: float = LOST_AFTER
) -> dict[str, Any] | None:
    """Who holds an order in flight, and whether they are alive; None once it is not.

    ``claim``: while ``provisioning``, the worker whose claim holds it (``worker`` None for a
    claim of 0.1.0), since when, and its heartbeat. ``messages``: each delivered task
    message of the order a worker holds (running, or taken and not started: a countdown
    retry), since when, and that worker's heartbeat. A heartbeat is ``alive``, or gone
    (``swept``: its messages are back in their queues, waiting for a worker; else they go
    back within a heartbeat interval or two). ``callUntil``: a vendor call cut short may
    still run until then (nobody calls again before). ``now``: Redis's clock, which
    heartbeats are judged by.
    """
    if record.state not in IN_FLIGHT:
        return None
    messages = ledger.holders_of(record.ref)
    claimed = record.state is State.PROVISIONING
    workers = [m.worker for m in messages] + ([record.claim_worker] if claimed else [])
    beats = ledger.heartbeats(workers, lost_after)

    def heartbeat(worker: str) -> dict[str, Any] | None:
        beat: Heartbeat | None = beats.get(worker)
        if beat is None:
            return None
        return {"alive": beat.alive, "last": beat.last, "swept": beat.swept}

    claim = None
    if claimed:
        claim = {
            "worker": record.claim_worker or None,
            "task": record.claim_task or None,
            "since": record.state_at,
            "heartbeat": heartbeat(record.claim_worker),
        }
    return {
        "claim": claim,
        "messages": [
            {"worker": m.worker, "since": m.since, "heartbeat": heartbeat(m.worker)}
            for m in messages
        ],
        "callUntil": record.call_until or None,
        "lostAfter": lost_after,
        "now": ledger.redis_time(),
    }


def holder_line(worker: str | None, heartbeat: dict[str, Any] | None, now: float) -> str:
    """``worker`` and its liveness in words, for the CLI and the console alike."""
    if not worker:
        return "a worker of 0.1.0 (it records no heartbeat: judged by the visibility timeout)"
    if heartbeat is None or heartbeat["last"] is None:
        return f"{worker}, gone (no heartbeat known)"
    silent = max(0.0, now - heartbeat["last"])
    if heartbeat["alive"]:
        return f"{worker}, alive (heartbeat {silent:.0f}s ago)"
    if heartbeat["swept"]:
        return f"{worker}, gone (no heartbeat for {silent:.0f}s; its messages went back)"
    return f"{worker}, gone (no heartbeat for {silent:.0f}s; its messages go back now)"


ERROR_EVENTS = frozenset(
    {"retry", "requeued", "worker-lost", "result-not-acknowledged", "result-rejected"}
)
"""History events that record something going wrong (besides entering ``dead``/``failed``)."""


def errors(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history entries (oldest first) that say what went wrong: retries and their
    errors, a refusal, a dead end, a result Pax8 refused."""
    bad_states = {State.DEAD.value, State.FAILED.value}
    return [
        entry
        for entry in history
        if entry.get("note")
        and (entry.get("event") in ERROR_EVENTS or entry.get("state") in bad_states)
    ]


def overview(ledger: LedgerReader, state: str | None, limit: int) -> dict[str, Any]:
    """Counts by state and the most recently updated orders."""
    return {
        "counts": ledger.counts(),
        "recent": [
            record.summary()
            for record in ledger.recent(limit=limit, state=State(state) if state else None)
        ],
    }


@dataclass(frozen=True)
class OrderQuery:
    """Which orders to list: every filter is optional; ages are in seconds.

    The age is the time since the last change, or with ``state`` the time in that state
    (the question an operator asks of a stuck order).
    """

    state: State | None = None
    type: str | None = None
    scope: Scope | None = None
    simulation: bool | None = None
    older_than: float | None = None
    newer_than: float | None = None
    page: int = 1
    per_page: int = 50


@dataclass
class OrderPage:
    """One page of a search, newest first."""

    query: OrderQuery
    records: list[Record] = field(default_factory=list)
    has_next: bool = False
    truncated: bool = False
    """The scan stopped at :data:`SCAN_LIMIT` records: narrow the filters to see further."""


def search(ledger: LedgerReader, query: OrderQuery, now: float | None = None) -> OrderPage:
    """The page ``query`` asks for (see :class:`OrderQuery`)."""
    now = time.time() if now is None else now
    until = now - query.older_than if query.older_than is not None else None
    since = now - query.newer_than if query.newer_than is not None else None
    skip = (max(1, query.page) - 1) * query.per_page
    wanted = skip + query.per_page + 1  # one more tells whether a next page exists
    matches: list[Ref] = []
    offset = 0
    batch = 500
    out = OrderPage(query)
    while len(matches) < wanted:
        if offset >= SCAN_LIMIT:
            out.truncated = True
            break
        refs = ledger.refs_by_time(query.state, since, until, offset, batch)
        offset += batch
        candidates = [ref for ref in refs if _scope_matches(ref, query)]
        if query.type and candidates:
            types = ledger.types(candidates)
            candidates = [ref for ref, t in zip(candidates, types, strict=True) if t == query.type]
        matches += candidates
        if len(refs) < batch:
            break
    page = matches[skip : skip + query.per_page]
    out.records = ledger.records(page)
    out.has_next = len(matches) > skip + query.per_page
    return out


def _scope_matches(ref: Ref, query: OrderQuery) -> bool:
    if query.scope is not None and ref.scope is not query.scope:
        return False
    return query.simulation is None or ref.simulation is query.simulation
