"""What the ledger holds and answers, as types: a notice in, a record out, a transition's answer.

A :class:`Record` is one provision request as its Redis hash keeps it (its fields are the
hash's; ``lua/common.lua`` names the hash ``RECORD``); :class:`Notice` is what intake records;
:class:`Change` is what a transition script decided. The ``parse_*`` helpers turn Redis
replies into these, for the store and the queries alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import Accepted, AttemptState, Changed, Claimed, State
from pax8.models import ResultStatus

A = TypeVar("A", Accepted, Claimed, Changed)

RECONCILE_TOTALS = ("seen", "enqueued", "rereported", "requeued", "reopened", "errors")
"""Reconciliation figures summed over every run (``errors``: how many the runs reported),
each a field of the ``reconcile:stats`` hash."""


@dataclass(frozen=True)
class Notice:
    """One accepted notification, reduced to what the ledger needs."""

    request_id: str
    detail_id: str
    attempt_id: str
    type: str
    simulation: bool
    payload: str
    source: str = "pax8"
    webhook_id: str = ""
    products: tuple[str, ...] = ()
    """What the route is decided by: the Pax8 ``productId`` (CloudBlue: the MPNs). Not kept."""
    old_products: tuple[str, ...] = ()
    """A ChangeProduct's ``oldProductId``: what the previous route is decided by. Not kept."""
    route: str = ""
    """The route decided for the order (``fulfillment/intake/routing.py``): kept with the
    record when it is created, and never changed after."""
    previous_route: str = ""
    """A ChangeProduct's previous route: the route of its old product."""
    route_refusal: str = ""
    """Why no route takes the order (its route is then ``-``): the Fail's message."""

    @property
    def ref(self) -> Ref:
        """The record this notice is about (its id checked)."""
        return Ref.of(self.source, self.simulation, self.request_id)


@dataclass(frozen=True)
class Attempt:
    """One attempt the ledger owes (or owed) a result."""

    id: str
    detail_id: str
    status: AttemptState
    at: float
    result_id: str | None = None


@dataclass(frozen=True)
class Record:
    """A provision request as the ledger knows it."""

    id: str
    state: State
    type: str
    source: str
    simulation: bool
    detail_id: str
    attempt_id: str
    payload: str = field(repr=False)
    outcome: ResultStatus | None = None
    outcome_detail_id: str = ""
    external_ids: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    result_message: str = ""
    error: str = ""
    retries: int = 0
    report_retries: int = 0
    claims: int = 0
    generation: int = 0
    call_until: float = 0.0
    """Until when the last vendor call may still be running (0: it answered)."""
    claim_task: str = ""
    """The task (Celery's id) whose claim holds the record while it is ``provisioning``."""
    claim_worker: str = ""
    """The worker process that claimed it (its heartbeat's id; "" unknown: a claim of 0.1.0)."""
    created_at: float = 0.0
    updated_at: float = 0.0
    state_at: float = 0.0
    webhook_id: str = ""
    route: str = ""
    """The route decided when the order was recorded (``-``: none takes it); empty for a
    record written before routes (it takes the route its product has now)."""
    previous_route: str = ""
    """A ChangeProduct's previous route (its old product's)."""
    route_refusal: str = ""
    """Why no route takes the order (route ``-``)."""

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Record:
        """Build from the Redis hash."""

        def number(name: str) -> float:
            try:
                return float(data.get(name) or 0)
            except ValueError:
                return 0.0

        return cls(
            id=data["id"],
            state=State(data["state"]),
            type=data.get("type", ""),
            source=data.get("source", "pax8"),
            simulation=data.get("simulation") == "1",
            detail_id=data.get("detail_id", ""),
            attempt_id=data.get("attempt_id", ""),
            payload=data.get("payload", ""),
            outcome=ResultStatus(data["outcome"]) if data.get("outcome") else None,
            outcome_detail_id=data.get("outcome_detail_id", ""),
            external_ids=json.loads(data.get("external_ids") or "{}"),
            metadata=json.loads(data.get("metadata") or "{}"),
            result_message=data.get("result_message", ""),
            error=data.get("error", ""),
            retries=int(number("retries")),
            report_retries=int(number("report_retries")),
            claims=int(number("claims")),
            generation=int(number("generation")),
            call_until=number("call_until"),
            claim_task=data.get("claim_task", ""),
            claim_worker=data.get("claim_worker", ""),
            created_at=number("created_at"),
            updated_at=number("updated_at"),
            state_at=number("state_at"),
            webhook_id=data.get("webhook_id", ""),
            route=data.get("route", ""),
            previous_route=data.get("previous_route", ""),
            route_refusal=data.get("route_refusal", ""),
        )

    @property
    def ref(self) -> Ref:
        """Which record this is."""
        return Ref.of(self.source, self.simulation, self.id)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view without the raw payload."""
        return {
            "id": self.id,
            "scope": self.ref.scope,
            "state": self.state,
            "type": self.type,
            "source": self.source,
            "simulation": self.simulation,
            "detailId": self.detail_id,
            "attemptId": self.attempt_id,
            "outcome": self.outcome or None,
            "externalIds": self.external_ids,
            "metadata": self.metadata,
            "resultMessage": self.result_message or None,
            "error": self.error or None,
            "retries": self.retries,
            "route": self.route or None,
            "previousRoute": self.previous_route or None,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True)
class Change(Generic[A]):
    """What a ledger script decided: ``action`` and the state the record was in before."""

    action: A
    previous: State | None
    wait: float = 0.0
    """Seconds until an earlier vendor call's deadline (action ``wait``)."""
    route: str = ""
    """The route the record was recorded with (action ``reroute``)."""
    record: Record | None = None
    """The record as the transition left it, where the script returns it (a ``claimed``
    claim does: its holder needs no second round trip to read it)."""
    report: ReportStart | None = None
    """The report run the transition started, where it was asked to (a ``finish`` given
    the report lock: the task that reports next needs no round trip to start it)."""


@dataclass(frozen=True)
class ReportStart:
    """What the script that starts a report run found (``begin_report`` in ``lua/common.lua``,
    run by ``report_begin.lua``, or by ``finish.lua`` given the report lock).

    ``action`` is ``missing``, ``unfinished`` (no outcome yet: no lock taken), ``busy``
    (another run holds the lock) or ``locked``: the lock is ours, ``record`` and
    ``attempts`` were read under it, and the attempts owed a POST are marked ``posting``
    (their status here is the one they had before, so a ``posting`` one is looked up
    first)."""

    action: str
    state: State | None
    record: Record | None = None
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class Holder:
    """Who holds one delivered, unacknowledged message (``ff:broker:holders``)."""

    tag: str
    worker: str
    member: str = ""
    """The order's ref member (``<scope>:<id>``); "" for a task of no order."""
    since: float = 0.0
    """When it was delivered (0: not read)."""

    @classmethod
    def parse(cls, tag: Any, value: Any, since: Any = None) -> Holder:
        """From a field of the hash, its value and (optionally) its score in the index."""
        worker, _, member = as_text(value).partition(" ")
        return cls(as_text(tag), worker, member, float(since or 0))


@dataclass(frozen=True)
class Heartbeat:
    """What the ledger knows of one worker process's heartbeat."""

    worker: str
    last: float | None
    """Its last heartbeat (Redis time); None if it left no trace (gone long ago, or never
    known: a claim of 0.1.0 names no worker)."""
    alive: bool
    """Whether that heartbeat is recent (within ``WORKER_LOST_AFTER_SECONDS``)."""
    swept: bool = False
    """Gone, and its messages already back in their queues."""


@dataclass(frozen=True)
class Scan:
    """The states of many records, read in one round trip."""

    states: dict[Ref, tuple[State, float]]
    """ref → (state, time it entered it), for the records that exist."""
    corrupt: frozenset[Ref] = frozenset()
    """refs whose key is not a record (written by hand, or by a bug)."""


class AmbiguousId(LookupError):
    """A bare id names records in several scopes; a :class:`Ref` must say which."""

    def __init__(self, request_id: str, scopes: list[Scope]) -> None:
        super().__init__(request_id, scopes)
        self.request_id = request_id
        self.scopes = scopes

    def __str__(self) -> str:
        names = ", ".join(str(scope) for scope in self.scopes)
        return f"{self.request_id} is recorded in several scopes ({names}): say which"


def parse_record(data: dict[Any, Any]) -> Record:
    """The record of an ``HGETALL`` reply (bytes or text)."""
    return Record.from_hash({as_text(k): as_text(v) for k, v in data.items()})


def pairs(flat: list[Any]) -> dict[Any, Any]:
    """A flat ``HGETALL`` reply as a script returns it (key, value, ...) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def parse_attempts(raw: dict[Any, Any]) -> list[Attempt]:
    """The attempts of an ``HGETALL`` of a record's attempts hash, oldest first."""
    out = []
    for attempt_id, value in raw.items():
        data = json.loads(as_text(value))
        out.append(
            Attempt(
                id=as_text(attempt_id),
                detail_id=data.get("detail", ""),
                status=AttemptState(data.get("status", AttemptState.PENDING)),
                at=float(data.get("at") or 0),
                result_id=data.get("result"),
            )
        )
    return sorted(out, key=lambda attempt: attempt.at)


def parse_refs(members: list[Any]) -> list[Ref]:
    """The refs a set's members name; a member that names none is skipped."""
    refs = []
    for member in members:
        try:
            refs.append(Ref.parse(as_text(member)))
        except ValueError:
            continue  # not a record's name (written by hand): nothing to act on
    return refs


def as_text(value: Any) -> str:
    """A Redis reply as text (``""`` for nil)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
