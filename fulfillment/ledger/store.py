"""The ledger: one Redis record per provision request, changed only by atomic scripts.

States and transition answers are in :mod:`fulfillment.ledger.states`. A record is named by its
:class:`~fulfillment.ledger.refs.Ref`, ``<scope>:<id>`` (``pax8``, ``pax8-sim`` or ``cloudblue``,
and an id checked against :data:`~fulfillment.ledger.refs.ID_PATTERN`), so the same id in two
scopes is two records and no notice of one scope can change another's. Keys (``prefix``
defaults to ``ff:``)::

    ff:req:<scope>:<id>            hash   the record (fields of :class:`Record`)
    ff:req:<scope>:<id>:attempts   hash   attempt id → {detail, status, at, result}: one
                                          ProvisionResult is owed per acknowledged attempt
    ff:req:<scope>:<id>:history    list   the last 100 state changes, newest first
    ff:req:<scope>:<id>:outcome    list   a wake-up token once the outcome is known (only
                                          for records someone may wait for: CloudBlue's)
    ff:index                       zset   <scope>:<id> by last update (recent orders)
    ff:state:<state>               zset   <scope>:<id> by the time it entered the state
    ff:cloudblue:sub:<id>          hash   a CloudBlue subscription's sequence of operations
                                          (which call is a retry: fulfillment.cloudblue.calls)

Every transition is one Lua script (``fulfillment/ledger/lua/*.lua``, each with a header naming
its keys and arguments; the record scripts share ``common.lua``), loaded once per client
and given every key it touches in ``KEYS``. So two workers (or a worker and the receiver)
can never both claim a request, and a record is never half-written. Vendor work happens at
most once per (request, detail): a task claims the record for its detail and a finished
detail is never claimed again; a new detail starts over. Each claim records until when the
vendor call it starts may still be running (``call_until``, the adapter's deadline); a call
that ended without an answer (its worker killed, a timeout, the soft time limit) keeps it,
and no claim calls the vendor again before it has passed (action ``wait``). Each claim also
has its own token, which every later write of its holder presents: a worker that lost its
claim to a redelivery of the same message (same task id; after a partition, say) can write
nothing.

**Durable transitions** (``wait_replicas`` > 0, from ``REDIS_WAIT_REPLICAS``): the writes
whose loss in a failover could provision or report twice (recording a notification before
its 202, the claim before a vendor call, the outcome after it, an attempt marked
``posting`` before its result is POSTed) run with Redis ``WAIT`` on the same connection, in
one round trip; fewer confirmations than asked raise
:class:`~fulfillment.runtime.clients.NotReplicated`, and nobody acts on the write. Replication is
one ordered stream, so a confirmed write also confirms everything the master did before
it, and what a failover loses is only a tail that nothing acted on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import redis
from redis.commands.core import Script
from redis.sentinel import SentinelConnectionPool

from fulfillment.ledger.refs import Ref, Scope, check_id
from fulfillment.ledger.scripts import lua_source
from fulfillment.ledger.states import (
    Accepted,
    AttemptState,
    Changed,
    Claimed,
    State,
)
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, NotReplicated
from pax8.models import ResultStatus

STATES = tuple(State)
OUTCOME_TOKEN_SECONDS = 3600
"""How long an outcome token lives (``notify_waiters`` in ``common.lua`` says the same): a
waiter reads the record itself, the token only wakes it, and an hour outlives any wait."""

RECONCILE_TOTALS = ("seen", "enqueued", "rereported", "requeued", "reopened", "errors")
"""Reconciliation figures summed over every run (``errors``: how many the runs reported)."""

log = logging.getLogger(__name__)

A = TypeVar("A", Accepted, Claimed, Changed)


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
    created_at: float = 0.0
    updated_at: float = 0.0
    state_at: float = 0.0
    webhook_id: str = ""

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
            created_at=number("created_at"),
            updated_at=number("updated_at"),
            state_at=number("state_at"),
            webhook_id=data.get("webhook_id", ""),
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


@dataclass(frozen=True)
class Scan:
    """The states of many records, read in one round trip."""

    states: dict[Ref, tuple[State, float]]
    """ref → (state, time it entered it), for the records that exist."""
    corrupt: frozenset[Ref] = frozenset()
    """refs whose key is not a record (written by hand, or by a bug)."""


class Ledger:
    """Typed access to the ledger's records and transitions.

    ``wait_replicas`` / ``wait_timeout_ms``: how many replicas must confirm a durable
    transition, and how long it waits for them (see the module docstring).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "ff:",
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._scripts: dict[str, Script] = {}
        self._index = f"{prefix}index"
        self._state_sets = [self.state_key(state) for state in STATES]
        self._durable_writes = f"{prefix}durable-writes"

    # -- keys and scripts ----------------------------------------------------------------

    def key(self, ref: Ref) -> str:
        """The record's hash key."""
        return f"{self.prefix}req:{ref.member}"

    def state_key(self, state: State) -> str:
        """The zset of the records in ``state``."""
        return f"{self.prefix}state:{state}"

    def record_keys(self, ref: Ref) -> list[str]:
        """The keys a record script touches, in the order ``common.lua`` expects."""
        key = self.key(ref)
        return [key, f"{key}:attempts", f"{key}:history", self._index, *self._state_sets]

    def outcome_key(self, ref: Ref) -> str:
        """The list a waiter blocks on until the record's outcome is known."""
        return f"{self.key(ref)}:outcome"

    def _waiters(self, ref: Ref) -> list[str]:
        """The outcome list for the scripts that settle an outcome, where someone may wait
        for it (the receiver answers CloudBlue calls with the outcome); none for Pax8."""
        return [self.outcome_key(ref)] if ref.scope is Scope.CLOUDBLUE else []

    def _script(self, name: str, record: bool = True) -> Script:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(lua_source(name, record))
        return script

    def _run(
        self, name: str, ref: Ref, *args: Any, keys: Sequence[str] = (), durable: bool = False
    ) -> Any:
        """Run record script ``name`` on ``ref`` (its member name is ARGV[1]).

        ``durable``: with ``wait_replicas`` set, the reply counts only once that many
        replicas hold the script's effects (else :class:`NotReplicated`, carrying it).
        """
        script = self._script(name)
        all_keys, argv = [*self.record_keys(ref), *keys], [ref.member, *args]
        if not durable or self.wait_replicas <= 0:
            return script(keys=all_keys, args=argv)
        reply, confirmed = self._run_and_wait(script, all_keys, argv)
        if confirmed < self.wait_replicas:
            self._rediscover_master()
            raise NotReplicated(name, self.wait_replicas, confirmed, reply)
        return reply

    def _run_and_wait(self, script: Script, keys: list[str], args: list[Any]) -> tuple[Any, int]:
        """EVALSHA and ``WAIT`` on one connection, in one round trip: (reply, confirmations).

        WAIT counts the replicas that acknowledged this connection's last write. A script
        that decided without writing (a duplicate notification, a claim of a finished
        order) wrote nothing of its own, yet its answer rests on what other connections
        wrote; so one counter increment always follows the script, and WAIT confirms the
        master's whole stream up to here, whatever the script did.
        """
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.incr(self._durable_writes)
            pipe.execute_command(  # type: ignore[no-untyped-call]  # redis-py's signature
                "WAIT", self.wait_replicas, self.wait_timeout_ms
            )
            try:
                reply, _, confirmed = pipe.execute()
            except redis.exceptions.NoScriptError:
                # A new master after a failover, or a restarted one: load it, run again
                # (the script did not run, so nothing happened twice).
                if attempt == 2:
                    raise
                self.redis.script_load(script.script)
                continue
            return reply, int(confirmed)
        raise AssertionError("unreachable")

    def _rediscover_master(self) -> None:
        """After a failover the old master takes writes until Sentinel demotes it (seconds):
        ask the sentinels again, so the next write goes to the new one (a no-op without
        Sentinel)."""
        pool = self.redis.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            try:
                # Drops the idle connections when the master moved.
                pool.get_master_address()  # type: ignore[no-untyped-call]
            except REDIS_UNAVAILABLE as exc:
                log.warning("could not ask the sentinels for the master: %s", exc)

    def resolve(self, ref: Ref | str) -> Ref:
        """``ref``, or for a bare id the one scope that has a record of it.

        For reads by an operator or a test who knows only an id. An id recorded in several
        scopes raises :class:`AmbiguousId` (say which one with a :class:`Ref`); an id
        recorded nowhere resolves to its Pax8 production ref (which reads as missing).
        """
        if isinstance(ref, Ref):
            return ref
        check_id(ref, "id")
        candidates = [Ref(scope, ref) for scope in Scope]
        pipe = self.redis.pipeline(transaction=False)
        for candidate in candidates:
            pipe.exists(self.key(candidate))
        found = [c for c, exists in zip(candidates, pipe.execute(), strict=True) if exists]
        if len(found) > 1:
            raise AmbiguousId(ref, [c.scope for c in found])
        return found[0] if found else candidates[0]

    def find(self, request_id: str) -> list[Record]:
        """Every record of ``request_id``, one per scope that has it."""
        check_id(request_id, "id")
        pipe = self.redis.pipeline(transaction=False)
        for scope in Scope:
            pipe.hgetall(self.key(Ref(scope, request_id)))
        return [_record(data) for data in pipe.execute() if data]

    @staticmethod
    def _change(action: type[A], reply: Any) -> Change[A]:
        name, previous, *rest = reply
        before = _text(previous)
        wait = float(_text(rest[0])) if rest else 0.0
        return Change(action(_text(name)), State(before) if before in STATES else None, wait)

    # -- intake --------------------------------------------------------------------------

    def accept(
        self,
        notice: Notice,
        message: tuple[str, str] | None = None,
        now: float | None = None,
    ) -> Change[Accepted]:
        """Record a notification; the action (:class:`~fulfillment.ledger.states.Accepted`) says
        what to enqueue. With ``message`` (queue, raw task message) the script pushes it
        itself when the order must be provisioned (action ``queued``)."""
        queue, raw = message if message else ("", "")
        reply = self._run(
            "accept",
            notice.ref,
            now or time.time(),
            notice.request_id,
            notice.source,
            notice.type,
            "1" if notice.simulation else "0",
            notice.detail_id,
            notice.attempt_id,
            notice.webhook_id,
            notice.payload,
            raw,
            keys=[queue] if queue else [],
            durable=True,
        )
        return self._change(Accepted, reply)

    def mark_queued(self, ref: Ref, detail_id: str, now: float | None = None) -> State | None:
        """``received`` → ``queued`` once the task is published; returns the state after."""
        after = _text(self._run("mark_queued", ref, now or time.time(), detail_id))
        return State(after) if after else None

    def add_attempt(self, ref: Ref, attempt_id: str, detail_id: str) -> bool:
        """Owe a result to ``attempt_id`` (an attempt created by us); True if new."""
        check_id(attempt_id, "attempt id")
        return bool(self._run("add_attempt", ref, time.time(), attempt_id, detail_id))

    # -- provisioning --------------------------------------------------------------------

    def claim(
        self,
        ref: Ref,
        detail_id: str,
        task_id: str,
        lease_seconds: float,
        max_claims: int,
        call_seconds: float | None = None,
        now: float | None = None,
        *,
        token: str | None = None,
    ) -> Change[Claimed]:
        """Take the record for provisioning ``detail_id`` (see :class:`Claimed`).

        ``task_id`` is the delivery's task: a redelivery of the same message may take over
        a claim whose holder died. ``token`` is this claim's own: :meth:`finish`,
        :meth:`release_for_retry` and :meth:`mark_dead` must present it, so a holder that
        was taken over (it was only cut off, and comes back) cannot write. It defaults to
        the task id, which is enough only where two deliveries of one message never
        overlap; :func:`fulfillment.workflow.provisioning.provision` gives every claim a fresh one.

        ``call_seconds`` is how long the vendor call this claim starts may still be running
        (the adapter's deadline; the lease when not given). While an earlier call may still
        be running the answer is ``wait``, with the seconds left in :attr:`Change.wait`.

        Durable: a claim the replicas did not confirm is given back (uncounted, and with no
        call running) and :class:`NotReplicated` raised, so no vendor is called on it.
        """
        now = now or time.time()
        token = token or task_id
        call = lease_seconds if call_seconds is None else call_seconds
        args = (now, detail_id, task_id, now + lease_seconds, max_claims, now + call, token)
        try:
            reply = self._run("claim", ref, *args, keys=self._waiters(ref), durable=True)
        except NotReplicated as exc:
            if exc.reply is not None and _text(exc.reply[0]) == Claimed.CLAIMED:
                self.release_for_retry(
                    ref, detail_id, token, str(exc), call_ended=True, counted=False
                )
            raise
        return self._change(Claimed, reply)

    def finish(
        self,
        ref: Ref,
        detail_id: str,
        task_id: str,
        outcome: ResultStatus | str,
        external_ids: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        message: str = "",
    ) -> Change[Changed]:
        """Store the vendor's outcome (``Success`` / ``Fail``) if the claim still holds
        (``task_id``: the claim's token). Durable (see the module docstring)."""
        reply = self._run(
            "finish",
            ref,
            time.time(),
            detail_id,
            task_id,
            ResultStatus(outcome),
            json.dumps(external_ids or {}),
            json.dumps(metadata or {}, default=str),
            message,
            keys=self._waiters(ref),
            durable=True,
        )
        return self._change(Changed, reply)

    def release_for_retry(
        self,
        ref: Ref,
        detail_id: str,
        task_id: str,
        error: str,
        call_ended: bool = False,
        *,
        counted: bool = True,
    ) -> Change[Changed]:
        """``provisioning`` → ``queued`` before a countdown retry, if the claim (``task_id``:
        its token) still holds; the retry counts against the budget when ``counted``.

        ``call_ended``: the vendor answered (or was never called), so its call is over.
        Otherwise (a timeout, the soft time limit) the call may still be running there, and
        its deadline stays.
        """
        reply = self._run(
            "release",
            ref,
            time.time(),
            detail_id,
            task_id,
            error,
            "1" if call_ended else "0",
            "1" if counted else "0",
        )
        return self._change(Changed, reply)

    def mark_dead(
        self, ref: Ref, error: str, task_id: str = "", event: str = "dead"
    ) -> Change[Changed]:
        """Give up on the request (only if the claim ``task_id`` names, by its token, still
        holds it, when given)."""
        reply = self._run("dead", ref, time.time(), task_id, error, event, keys=self._waiters(ref))
        return self._change(Changed, reply)

    def reset(
        self,
        ref: Ref,
        *,
        event: str,
        note: str = "",
        new_generation: bool = False,
        only_from: Iterable[State] = (),
    ) -> Change[Changed]:
        """Back to ``received`` (replay, reconciliation); refused outside ``only_from``."""
        reply = self._run(
            "reset",
            ref,
            time.time(),
            "1" if new_generation else "0",
            event,
            note,
            ",".join(only_from),
        )
        return self._change(Changed, reply)

    # -- reporting -----------------------------------------------------------------------

    def attempts(self, ref: Ref | str) -> list[Attempt]:
        """Every attempt recorded for the request, oldest first."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.key(self.resolve(ref)) + ":attempts"))
        out = []
        for attempt_id, value in raw.items():
            data = json.loads(_text(value))
            out.append(
                Attempt(
                    id=_text(attempt_id),
                    detail_id=data.get("detail", ""),
                    status=AttemptState(data.get("status", AttemptState.PENDING)),
                    at=float(data.get("at") or 0),
                    result_id=data.get("result"),
                )
            )
        return sorted(out, key=lambda attempt: attempt.at)

    def mark_posting(self, ref: Ref, attempt_id: str) -> None:
        """Note that a result POST for ``attempt_id`` is about to leave (durable: a POST
        whose mark a failover lost would be repeated without the look-up first)."""
        self._run(
            "mark_attempt",
            ref,
            time.time(),
            attempt_id,
            AttemptState.POSTING,
            "",
            "",
            durable=True,
        )

    def mark_pending(self, ref: Ref, attempt_id: str, event: str, note: str) -> None:
        """The attempt is still owed (its POST surely stored nothing); noted in the history."""
        self._run("mark_attempt", ref, time.time(), attempt_id, AttemptState.PENDING, event, note)

    def settle(
        self,
        ref: Ref,
        attempt_id: str,
        result_id: str | None,
        status: AttemptState = AttemptState.REPORTED,
        note: str = "",
    ) -> State | None:
        """Mark an attempt reported (or superseded, rejected: ``note`` says why, in the
        history); returns the record's state after."""
        after = _text(
            self._run("settle", ref, time.time(), attempt_id, status, result_id or "", note)
        )
        return State(after) if after else None

    def count_report_retry(self, ref: Ref) -> int:
        """Count one more failed try to report; how many since the budget last restarted."""
        return int(self.redis.hincrby(self.key(ref), "report_retries", 1))

    def reset_report_retries(self, ref: Ref) -> None:
        """Restart the report budget (a report deferred to reconciliation starts afresh)."""
        self.redis.hset(self.key(ref), "report_retries", 0)

    def reopen(self, ref: Ref, attempt_id: str, note: str) -> State | None:
        """Owe ``attempt_id`` a result again after it was settled ``rejected``.

        Returns the record's state after (``provisioned``/``failed`` when a report is
        due), or None when the attempt was not rejected (nothing changed).
        """
        after = _text(self._run("reopen", ref, time.time(), attempt_id, note))
        return State(after) if after else None

    # -- reading -------------------------------------------------------------------------

    def get(self, ref: Ref | str) -> Record | None:
        """The record, or None (a bare id: see :meth:`resolve`)."""
        data = cast(dict[Any, Any], self.redis.hgetall(self.key(self.resolve(ref))))
        return _record(data) if data else None

    def states(self, refs: Sequence[Ref]) -> Scan:
        """(state, time in state) of many records in one round trip; unknown ones left out.

        A key that is not a record (corrupted by hand) is listed in ``corrupt`` rather than
        failing the whole batch.
        """
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hmget(self.key(ref), "state", "state_at")
        found: dict[Ref, tuple[State, float]] = {}
        corrupt: set[Ref] = set()
        replies = pipe.execute(raise_on_error=False)
        for ref, reply in zip(refs, replies, strict=True):
            if isinstance(reply, redis.exceptions.ResponseError):
                corrupt.add(ref)
                continue
            state, state_at = reply
            if state is None:
                continue
            if _text(state) not in STATES:
                corrupt.add(ref)
                continue
            found[ref] = (State(_text(state)), float(_text(state_at) or 0))
        return Scan(found, frozenset(corrupt))

    def history(self, ref: Ref | str) -> list[dict[str, Any]]:
        """The record's state changes, oldest first."""
        key = self.key(self.resolve(ref)) + ":history"
        entries = cast(list[Any], self.redis.lrange(key, 0, -1))
        return [json.loads(_text(entry)) for entry in reversed(entries)]

    def counts(self) -> dict[State, int]:
        """How many records are in each state."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self._state_sets:
            pipe.zcard(key)
        return dict(zip(STATES, (int(n) for n in pipe.execute()), strict=True))

    def in_state(
        self, state: State, older_than: float | None = None, limit: int = 1000
    ) -> list[Ref]:
        """Records in ``state``, oldest first; only those that entered it before
        ``older_than``. A member that names no valid ref (written by hand) is skipped."""
        high = "+inf" if older_than is None else f"({older_than}"
        members = cast(
            list[Any], self.redis.zrangebyscore(self.state_key(state), "-inf", high, 0, limit)
        )
        return _refs(members)

    def purge_reported(self, older_than: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` records reported before ``older_than``; how many went."""
        refs = self.in_state(State.REPORTED, older_than=older_than, limit=limit)
        if not refs:
            return 0
        keys = [self._index, self.state_key(State.REPORTED)]
        for ref in refs:
            key = self.key(ref)
            keys += [
                key,
                f"{key}:attempts",
                f"{key}:history",
                f"{key}:report-lock",
                f"{key}:outcome",
            ]
        members = [ref.member for ref in refs]
        return int(self._script("purge", record=False)(keys=keys, args=[older_than, *members]))

    def wake_next(self, ref: Ref) -> None:
        """Put the outcome token back for the next waiter (see
        :mod:`fulfillment.cloudblue.awaiting`)."""
        key = self.outcome_key(ref)
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(key, "1")
        pipe.ltrim(key, 0, 9)
        pipe.expire(key, OUTCOME_TOKEN_SECONDS)
        pipe.execute()

    def cloudblue_occurrence(
        self, subscription_id: str, fingerprint: str, keep_seconds: float = 0
    ) -> int:
        """The place of a CloudBlue call in its subscription's sequence of operations: the
        latest one's when ``fingerprint`` repeats the latest call (a retry), else the next.
        The sequence is kept ``keep_seconds`` after its latest call (0: forever)."""
        key = f"{self.prefix}cloudblue:sub:{check_id(subscription_id, 'subscriptionId')}"
        script = self._script("occurrence", record=False)
        return int(script(keys=[key], args=[fingerprint, keep_seconds]))

    def record_reconcile_run(self, summary: dict[str, Any], buckets: Sequence[float] = ()) -> None:
        """Count a reconciliation run, add its figures to the running totals and its
        duration to a histogram of ``buckets`` (upper bounds), and keep its summary.

        Kept here rather than in a process: a run happens in a worker, the CLI or the
        console, and the metrics read the totals wherever they are scraped.
        """
        stats = f"{self.prefix}reconcile:stats"
        seconds = float(summary.get("seconds") or 0.0)
        bucket = next((f"{le:g}" for le in buckets if seconds <= le), "+Inf")
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(f"{self.prefix}reconcile:runs")
        pipe.set(f"{self.prefix}reconcile:last", json.dumps(summary))
        for name in RECONCILE_TOTALS:
            pipe.hincrby(stats, name, len(summary.get(name) or ()) if name == "errors"
                         else int(summary.get(name) or 0))  # fmt: skip
        pipe.hincrby(stats, f"le:{bucket}", 1)
        pipe.hincrbyfloat(stats, "seconds", seconds)
        pipe.execute()

    def reconcile_stats(self) -> dict[str, float]:
        """The running totals of every reconciliation (``enqueued``, ``rereported``, ...,
        ``seconds``) and the duration histogram's counts (``le:<bound>``, not cumulative)."""
        raw = cast(dict[Any, Any], self.redis.hgetall(f"{self.prefix}reconcile:stats"))
        return {_text(key): float(_text(value)) for key, value in raw.items()}

    def oldest(self, states: Iterable[State]) -> dict[State, float | None]:
        """When the longest-waiting record of each state entered it (None: no record)."""
        wanted = list(states)
        pipe = self.redis.pipeline(transaction=False)
        for state in wanted:
            pipe.zrange(self.state_key(state), 0, 0, withscores=True)
        out: dict[State, float | None] = {}
        for state, reply in zip(wanted, pipe.execute(), strict=True):
            out[state] = float(reply[0][1]) if reply else None
        return out

    def reconcile_runs(self) -> tuple[int, dict[str, Any] | None]:
        """How many reconciliations ran, and the summary of the last one."""
        values: Any = self.redis.mget(
            f"{self.prefix}reconcile:runs", f"{self.prefix}reconcile:last"
        )
        runs, last = values
        return int(runs or 0), (json.loads(last) if last else None)

    def refs_by_time(
        self,
        state: State | None = None,
        since: float | None = None,
        until: float | None = None,
        offset: int = 0,
        count: int = 500,
    ) -> list[Ref]:
        """Refs newest first: by last update, or with ``state`` by when they entered it;
        only those whose time is within [``since``, ``until``]."""
        index = self.state_key(state) if state else self._index
        high = "+inf" if until is None else repr(until)
        low = "-inf" if since is None else repr(since)
        members = self.redis.zrevrangebyscore(index, high, low, start=offset, num=count)
        return _refs(cast(list[Any], members))

    def types(self, refs: Sequence[Ref]) -> list[str]:
        """The request type of each record (``""`` for one that is gone), one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hget(self.key(ref), "type")
        return [_text(value) for value in pipe.execute()]

    def records(self, refs: Sequence[Ref]) -> list[Record]:
        """The records of ``refs`` that still exist, in order, one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hgetall(self.key(ref))
        return [_record(data) for data in pipe.execute() if data]

    def recent(self, limit: int = 20, state: State | None = None) -> list[Record]:
        """The most recently updated records (optionally in one state)."""
        index = self.state_key(state) if state else self._index
        refs = _refs(cast(list[Any], self.redis.zrevrange(index, 0, limit - 1)))
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hgetall(self.key(ref))
        return [_record(data) for data in pipe.execute() if data]


class AmbiguousId(LookupError):
    """A bare id names records in several scopes; a :class:`Ref` must say which."""

    def __init__(self, request_id: str, scopes: list[Scope]) -> None:
        super().__init__(request_id, scopes)
        self.request_id = request_id
        self.scopes = scopes

    def __str__(self) -> str:
        names = ", ".join(str(scope) for scope in self.scopes)
        return f"{self.request_id} is recorded in several scopes ({names}): say which"


def _record(data: dict[Any, Any]) -> Record:
    return Record.from_hash({_text(k): _text(v) for k, v in data.items()})


def _refs(members: list[Any]) -> list[Ref]:
    refs = []
    for member in members:
        try:
            refs.append(Ref.parse(_text(member)))
        except ValueError:
            continue  # not a record's name (written by hand): nothing to act on
    return refs


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
