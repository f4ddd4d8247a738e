"""The ledger's reads: one record, many, by state or by time, counts, and what the broker holds.

Nothing here writes (:mod:`fulfillment.ledger.store` is the writer, and a
:class:`~fulfillment.ledger.store.Ledger` is also a :class:`LedgerReader`). Read models
(``fulfillment.views``) and anything else that only looks take a :class:`LedgerReader`.
Several records are read in one round trip (a pipeline) wherever a caller asks for several.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from fulfillment.ledger.keys import BROKER_UNACKED, BROKER_UNACKED_INDEX, Keys
from fulfillment.ledger.records import (
    AmbiguousId,
    Attempt,
    Heartbeat,
    Holder,
    Record,
    Scan,
    as_text,
    parse_attempts,
    parse_record,
    parse_refs,
)
from fulfillment.ledger.refs import Ref, Scope, check_id
from fulfillment.ledger.states import STATES, State


class LedgerReader:
    """Reads of the ledger on ``client`` under ``keys``."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

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
            pipe.exists(self.keys.record(candidate))
        found = [c for c, exists in zip(candidates, pipe.execute(), strict=True) if exists]
        if len(found) > 1:
            raise AmbiguousId(ref, [c.scope for c in found])
        return found[0] if found else candidates[0]

    def find(self, request_id: str) -> list[Record]:
        """Every record of ``request_id``, one per scope that has it."""
        check_id(request_id, "id")
        pipe = self.redis.pipeline(transaction=False)
        for scope in Scope:
            pipe.hgetall(self.keys.record(Ref(scope, request_id)))
        return [parse_record(data) for data in pipe.execute() if data]

    def attempts(self, ref: Ref | str) -> list[Attempt]:
        """Every attempt recorded for the request, oldest first."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.attempts(self.resolve(ref))))
        return parse_attempts(raw)

    def get(self, ref: Ref | str) -> Record | None:
        """The record, or None (a bare id: see :meth:`resolve`)."""
        data = cast(dict[Any, Any], self.redis.hgetall(self.keys.record(self.resolve(ref))))
        return parse_record(data) if data else None

    def states(self, refs: Sequence[Ref]) -> Scan:
        """(state, time in state) of many records in one round trip; unknown ones left out.

        A key that is not a record (corrupted by hand) is listed in ``corrupt`` rather than
        failing the whole batch.
        """
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hmget(self.keys.record(ref), "state", "state_at")
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
            if as_text(state) not in STATES:
                corrupt.add(ref)
                continue
            found[ref] = (State(as_text(state)), float(as_text(state_at) or 0))
        return Scan(found, frozenset(corrupt))

    def history(self, ref: Ref | str) -> list[dict[str, Any]]:
        """The record's state changes, oldest first."""
        key = self.keys.history(self.resolve(ref))
        entries = cast(list[Any], self.redis.lrange(key, 0, -1))
        return [json.loads(as_text(entry)) for entry in reversed(entries)]

    def counts(self) -> dict[State, int]:
        """How many records are in each state."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys.state_sets:
            pipe.zcard(key)
        return dict(zip(STATES, (int(n) for n in pipe.execute()), strict=True))

    def in_state(
        self, state: State, older_than: float | None = None, limit: int = 1000
    ) -> list[Ref]:
        """Records in ``state``, oldest first; only those that entered it before
        ``older_than``. A member that names no valid ref (written by hand) is skipped."""
        high = "+inf" if older_than is None else f"({older_than}"
        members = cast(
            list[Any], self.redis.zrangebyscore(self.keys.state(state), "-inf", high, 0, limit)
        )
        return parse_refs(members)

    def reconcile_stats(self) -> dict[str, float]:
        """The running totals of every reconciliation (``enqueued``, ``rereported``, ...,
        ``seconds``) and the duration histogram's counts (``le:<bound>``, not cumulative)."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.reconcile_stats))
        return {as_text(key): float(as_text(value)) for key, value in raw.items()}

    def oldest(self, states: Iterable[State]) -> dict[State, float | None]:
        """When the longest-waiting record of each state entered it (None: no record)."""
        wanted = list(states)
        pipe = self.redis.pipeline(transaction=False)
        for state in wanted:
            pipe.zrange(self.keys.state(state), 0, 0, withscores=True)
        out: dict[State, float | None] = {}
        for state, reply in zip(wanted, pipe.execute(), strict=True):
            out[state] = float(reply[0][1]) if reply else None
        return out

    def reconcile_runs(self) -> tuple[int, dict[str, Any] | None]:
        """How many reconciliations ran, and the summary of the last one."""
        values: Any = self.redis.mget(self.keys.reconcile_runs, self.keys.reconcile_last)
        runs, last = values
        return int(runs or 0), (json.loads(last) if last else None)

    def doctor_report(self) -> dict[str, Any] | None:
        """The last stored ``fulfill doctor`` report (None: none yet, or unreadable)."""
        raw: Any = self.redis.get(self.keys.doctor_last)
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

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
        index = self.keys.state(state) if state else self.keys.index
        high = "+inf" if until is None else repr(until)
        low = "-inf" if since is None else repr(since)
        members = self.redis.zrevrangebyscore(index, high, low, start=offset, num=count)
        return parse_refs(cast(list[Any], members))

    def types(self, refs: Sequence[Ref]) -> list[str]:
        """The request type of each record (``""`` for one that is gone), one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hget(self.keys.record(ref), "type")
        return [as_text(value) for value in pipe.execute()]

    def records(self, refs: Sequence[Ref]) -> list[Record]:
        """The records of ``refs`` that still exist, in order, one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hgetall(self.keys.record(ref))
        return [parse_record(data) for data in pipe.execute() if data]

    def recent(self, limit: int = 20, state: State | None = None) -> list[Record]:
        """The most recently updated records (optionally in one state)."""
        index = self.keys.state(state) if state else self.keys.index
        refs = parse_refs(cast(list[Any], self.redis.zrevrange(index, 0, limit - 1)))
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hgetall(self.keys.record(ref))
        return [parse_record(data) for data in pipe.execute() if data]

    def queue_depths(self, queues: Sequence[str]) -> tuple[list[int], int]:
        """How many task messages wait in each of ``queues``, and how many a worker holds
        unacknowledged (running, or waiting for a countdown), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        pipe.hlen(BROKER_UNACKED)
        *depths, unacked = pipe.execute()
        return [int(depth) for depth in depths], int(unacked)

    # -- the schema (fulfillment.ledger.schema) ------------------------------------------

    def schema_stamp(self) -> dict[str, str]:
        """The schema stamp's fields (empty when the data carries none)."""
        return _strings(self.redis.hgetall(self.keys.schema))

    def ping_schema(self) -> int | None:
        """PING, and the stamped schema version (None if none), in one round trip: a
        readiness check that also says which schema the data is at."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.ping()
        pipe.hget(self.keys.schema, "version")
        _, version = pipe.execute()
        text = as_text(version) if version is not None else ""
        return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None

    def migration_progress(self) -> dict[str, str]:
        """Where a migration under way stands (empty when none is)."""
        return _strings(self.redis.hgetall(self.keys.migration))

    def holds_data(self) -> bool:
        """Whether any key of the ledger exists besides the schema's own (its stamp, a
        migration's progress and lock): ``SCAN`` until the first one (a deployment's ledger
        always has its index, so the first pages answer)."""
        own = {self.keys.schema, self.keys.migration, self.keys.migrate_lock}
        cursor = 0
        while True:
            cursor, found = self.redis.scan(cursor, match=self.keys.pattern, count=1000)
            if any(as_text(key) not in own for key in found):
                return True
            if int(cursor) == 0:
                return False

    def index_page(self, cursor: int, count: int) -> tuple[int, list[str]]:
        """One ``ZSCAN`` page of the index: (the next cursor, 0 at the end; member names)."""
        following, items = self.redis.zscan(self.keys.index, cursor, count=count)
        return int(following), [as_text(member) for member, _score in items]

    # -- who holds what (fulfillment.ledger.liveness writes it) --------------------------------

    def holders(self) -> list[Holder]:
        """Every delivered, unacknowledged message with a recorded holder (one ``HGETALL``:
        as many as the workers hold, running, prefetched or waiting for a countdown)."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.keys.holders))
        return [Holder.parse(tag, value) for tag, value in raw.items()]

    def holders_of(self, ref: Ref) -> list[Holder]:
        """The delivered messages of ``ref``'s tasks, with who holds each and since when."""
        mine = [h for h in self.holders() if h.member == ref.member]
        if not mine:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for holder in mine:
            pipe.zscore(BROKER_UNACKED_INDEX, holder.tag)
        since = pipe.execute()
        return [
            Holder(h.tag, h.worker, h.member, float(at or 0))
            for h, at in zip(mine, since, strict=True)
        ]

    def heartbeats(self, workers: Sequence[str], lost_after: float) -> dict[str, Heartbeat]:
        """The heartbeat of each of ``workers``, judged against Redis's own clock (a worker's
        last heartbeat older than ``lost_after`` seconds: gone), in one round trip."""
        wanted = [w for w in dict.fromkeys(workers) if w]
        if not wanted:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        for worker in wanted:
            pipe.zscore(self.keys.workers, worker)
            pipe.zscore(self.keys.workers_gone, worker)
        seconds, micros = (replies := pipe.execute())[0]
        now = float(seconds) + float(micros) / 1e6
        out = {}
        for index, worker in enumerate(wanted):
            beating, gone = replies[1 + 2 * index], replies[2 + 2 * index]
            last = beating if beating is not None else gone
            out[worker] = Heartbeat(
                worker,
                float(last) if last is not None else None,
                alive=beating is not None and now - float(beating) <= lost_after,
                swept=beating is None and gone is not None,
            )
        return out

    def redis_time(self) -> float:
        """Redis's clock (what heartbeats are judged against)."""
        seconds, micros = self.redis.time()
        return float(seconds) + float(micros) / 1e6

    def in_flight(self, refs: Sequence[Ref]) -> list[dict[str, str]]:
        """For each of ``refs``: its ``state``, ``state_at`` (as stored), ``type``,
        ``detail_id``, ``claim_worker`` and ``route`` ("" each for a record that is gone or
        a field it lacks), one round trip."""
        fields = ("state", "state_at", "type", "detail_id", "claim_worker", "route")
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            pipe.hmget(self.keys.record(ref), *fields)
        return [
            dict(zip(fields, (as_text(value) for value in reply), strict=True))
            for reply in pipe.execute()
        ]

    def unheld_deliveries(self) -> list[str]:
        """The unacknowledged messages kombu keeps without a recorded holder (delivered by a
        worker of 0.1.0, during a rolling upgrade), as kombu keeps them; usually none."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hkeys(BROKER_UNACKED)
        pipe.hkeys(self.keys.holders)
        tags, held = pipe.execute()
        held_tags = set(held)
        unheld = [tag for tag in tags if tag not in held_tags]
        if not unheld:
            return []
        entries = cast(list[Any], self.redis.hmget(BROKER_UNACKED, unheld))
        return [as_text(entry) for entry in entries if entry is not None]


def _strings(raw: Any) -> dict[str, str]:
    return {as_text(key): as_text(value) for key, value in cast(dict[Any, Any], raw).items()}
