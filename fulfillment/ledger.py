"""The ledger: one Redis record per provision request, changed only by atomic scripts.

States (DESIGN §6)::

    received → queued → provisioning → provisioned | failed → reported
                                     ↘ dead (retry budget spent, or the task kept
                                             killing its worker)

Keys (``prefix`` defaults to ``ff:``):

* ``ff:req:<id>``           hash: the record (fields of :class:`Record`)
* ``ff:req:<id>:attempts``  hash: attempt id → {detail, status pending|posting|reported|
  superseded|rejected, at, result}: one ProvisionResult is owed per acknowledged attempt
* ``ff:req:<id>:history``   list: the last 100 state changes, newest first
* ``ff:index``              zset: id by last update (recent orders)
* ``ff:state:<state>``      zset: id by time it entered the state (counts, stuck scans)

Every transition is one Lua script, so two workers (or a worker and the receiver) can
never both claim a request, and a record is never half-written. Vendor work happens at
most once per (request, detail): a task claims the record for its detail and a finished
detail is never claimed again; a new detail starts over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

STATES = (
    "received",
    "queued",
    "provisioning",
    "provisioned",
    "failed",
    "reported",
    "dead",
)
IN_FLIGHT = frozenset({"received", "queued", "provisioning"})
OUTCOME_STATE = {"Success": "provisioned", "Fail": "failed"}

_COMMON = r"""
local P = ARGV[1]
local function set_state(id, new, now, event, note)
  local key = P .. 'req:' .. id
  local old = redis.call('HGET', key, 'state')
  if old then redis.call('ZREM', P .. 'state:' .. old, id) end
  redis.call('ZADD', P .. 'state:' .. new, now, id)
  redis.call('ZADD', P .. 'index', now, id)
  redis.call('HSET', key, 'state', new, 'updated_at', now, 'state_at', now)
  redis.call('LPUSH', key .. ':history',
    cjson.encode({at = now, state = new, event = event, note = note or ''}))
  redis.call('LTRIM', key .. ':history', 0, 99)
end
-- Whether ``task`` still holds the record's claim for ``detail``.
local function holds(key, state, detail, task)
  return state == 'provisioning' and redis.call('HGET', key, 'claim_task') == task
    and redis.call('HGET', key, 'detail_id') == detail
end
-- A history entry that keeps the state (an event worth an operator's eye, not a transition).
local function note(id, now, event, text)
  local key = P .. 'req:' .. id
  local state = redis.call('HGET', key, 'state') or ''
  redis.call('LPUSH', key .. ':history',
    cjson.encode({at = now, state = state, event = event, note = text or ''}))
  redis.call('LTRIM', key .. ':history', 0, 99)
end
local function attempt_status(id, attempt, status, now, result)
  local akey = P .. 'req:' .. id .. ':attempts'
  local raw = redis.call('HGET', akey, attempt)
  if not raw then return false end
  local a = cjson.decode(raw)
  a.status = status
  a.at = now
  if result then a.result = result end
  redis.call('HSET', akey, attempt, cjson.encode(a))
  return a
end
"""

# ARGV: prefix, id, now, source, type, simulation, detail, attempt, webhook, payload,
#       queue, message ('' = the caller publishes the task itself)
_ACCEPT = (
    _COMMON
    + r"""
local id, now = ARGV[2], tonumber(ARGV[3])
local detail, attempt = ARGV[7], ARGV[8]
local key = P .. 'req:' .. id
-- Provision: enqueue the task message here when given (record and enqueue are atomic).
local function provision(previous)
  if ARGV[12] == '' then return {'provision', previous} end
  redis.call('LPUSH', ARGV[11], ARGV[12])
  set_state(id, 'queued', now, 'enqueued', '')
  return {'queued', previous}
end
local state = redis.call('HGET', key, 'state')
local fresh = 0
if attempt ~= '' then
  fresh = redis.call('HSETNX', key .. ':attempts', attempt,
    cjson.encode({detail = detail, status = 'pending', at = now}))
  if fresh == 1 then redis.call('HSET', key, 'attempt_id', attempt, 'webhook_id', ARGV[9]) end
end
if not state then
  redis.call('HSET', key, 'id', id, 'source', ARGV[4], 'type', ARGV[5],
    'simulation', ARGV[6], 'detail_id', detail, 'attempt_id', attempt, 'webhook_id', ARGV[9],
    'payload', ARGV[10], 'created_at', now, 'retries', 0, 'claims', 0, 'generation', 0)
  set_state(id, 'received', now, 'notified', attempt)
  return provision('')
end
if detail ~= redis.call('HGET', key, 'detail_id') then
  redis.call('HSET', key, 'detail_id', detail, 'payload', ARGV[10], 'type', ARGV[5],
    'retries', 0, 'claims', 0, 'claim_task', '', 'error', '')
  set_state(id, 'received', now, 'new-detail', detail)
  return provision(state)
end
if state == 'received' then
  return provision(state)
end
if state == 'queued' or state == 'provisioning' then
  return {'inflight', state}
end
if state == 'dead' then
  if fresh == 1 then
    redis.call('HSET', key, 'retries', 0, 'claims', 0, 'claim_task', '', 'payload', ARGV[10])
    set_state(id, 'received', now, 'new-attempt', attempt)
    return provision(state)
  end
  return {'duplicate', state}
end
if fresh == 1 then
  if state == 'reported' then
    local outcome = redis.call('HGET', key, 'outcome')
    set_state(id, outcome == 'Fail' and 'failed' or 'provisioned', now, 'new-attempt', attempt)
  end
  return {'report', state}
end
return {'duplicate', state}
"""
)

# ARGV: prefix, id, detail, now
_MARK_QUEUED = (
    _COMMON
    + r"""
local id, detail, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = P .. 'req:' .. id
local state = redis.call('HGET', key, 'state')
if state == 'received' and redis.call('HGET', key, 'detail_id') == detail then
  set_state(id, 'queued', now, 'enqueued', '')
  return 'queued'
end
return state or ''
"""
)

# ARGV: prefix, id, detail, task, now, lease_until, max_claims
_CLAIM = (
    _COMMON
    + r"""
local id, detail, task, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = P .. 'req:' .. id
local state = redis.call('HGET', key, 'state')
if not state then return {'missing', ''} end
if redis.call('HGET', key, 'detail_id') ~= detail then return {'stale', state} end
if state == 'provisioned' or state == 'failed' or state == 'reported' then
  return {'done', state}
end
if state == 'dead' then return {'dead', state} end
if state == 'provisioning' then
  local holder = redis.call('HGET', key, 'claim_task')
  local lease = tonumber(redis.call('HGET', key, 'claim_until') or '0') or 0
  if holder ~= task and lease > now then return {'busy', state} end
end
if state == 'received' then
  -- The worker got the message before the receiver marked it: it was queued.
  set_state(id, 'queued', now, 'enqueued', '')
end
local claims = redis.call('HINCRBY', key, 'claims', 1)
if claims > tonumber(ARGV[7]) then
  local why = 'the task was lost with its worker ' .. (claims - 1) ..
    ' times in a row (killed, out of memory or over its time limit)'
  redis.call('HSET', key, 'error', why, 'claim_task', '')
  set_state(id, 'dead', now, 'worker-lost', why)
  return {'dead_now', state}
end
redis.call('HSET', key, 'claim_task', task, 'claim_until', ARGV[6])
set_state(id, 'provisioning', now, 'claimed', task)
return {'claimed', state}
"""
)

# ARGV: prefix, id, detail, task, now, outcome, external_ids, metadata, message
_FINISH = (
    _COMMON
    + r"""
local id, detail, task, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = P .. 'req:' .. id
local state = redis.call('HGET', key, 'state')
if not holds(key, state, detail, task) then return {'stale', state or ''} end
local outcome = ARGV[6]
redis.call('HSET', key, 'outcome', outcome, 'outcome_detail_id', detail,
  'external_ids', ARGV[7], 'metadata', ARGV[8], 'result_message', ARGV[9],
  'error', outcome == 'Fail' and ARGV[9] or '', 'claims', 0, 'claim_task', '',
  'claim_until', 0, 'provisioned_at', now)
set_state(id, outcome == 'Fail' and 'failed' or 'provisioned', now, 'vendor', ARGV[9])
return {'ok', state}
"""
)

# ARGV: prefix, id, detail, task, now, error
_RETRY = (
    _COMMON
    + r"""
local id, detail, task, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = P .. 'req:' .. id
local state = redis.call('HGET', key, 'state')
if not holds(key, state, detail, task) then return {'stale', state or ''} end
local retries = redis.call('HINCRBY', key, 'retries', 1)
redis.call('HSET', key, 'error', ARGV[6], 'claims', 0, 'claim_task', '', 'claim_until', 0)
set_state(id, 'queued', now, 'retry', ARGV[6])
return {'ok', tostring(retries)}
"""
)

# ARGV: prefix, id, task ('' = any holder), now, error, event
_DEAD = (
    _COMMON
    + r"""
local id, task, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = P .. 'req:' .. id
local state = redis.call('HGET', key, 'state')
if not state then return {'missing', ''} end
if task ~= '' and redis.call('HGET', key, 'claim_task') ~= task then
  return {'stale', state}
end
redis.call('HSET', key, 'error', ARGV[5], 'claims', 0, 'claim_task', '', 'claim_until', 0)
set_state(id, 'dead', now, ARGV[6], ARGV[5])
return {'ok', state}
"""
)

# ARGV: prefix, id, now, bump_generation (0/1), event, note, only_states (comma list)
_RESET = (
    _COMMON
    + r"""
local id, now = ARGV[2], tonumber(ARGV[3])
local key = P .. 'req:' .. id
local state = redis.call('HGET', key, 'state')
if not state then return {'missing', ''} end
if ARGV[7] ~= '' and not string.find(',' .. ARGV[7] .. ',', ',' .. state .. ',', 1, true) then
  return {'refused', state}
end
if ARGV[4] == '1' then redis.call('HINCRBY', key, 'generation', 1) end
redis.call('HSET', key, 'retries', 0, 'claims', 0, 'claim_task', '', 'claim_until', 0)
set_state(id, 'received', now, ARGV[5], ARGV[6])
return {'ok', state}
"""
)

# ARGV: prefix, id, attempt, now, status (posting|pending), event ('' = no history entry), note
_MARK_ATTEMPT = (
    _COMMON
    + r"""
local a = attempt_status(ARGV[2], ARGV[3], ARGV[5], tonumber(ARGV[4]), nil)
if a and ARGV[6] ~= '' then note(ARGV[2], tonumber(ARGV[4]), ARGV[6], ARGV[7]) end
return a and 1 or 0
"""
)

# ARGV: prefix, id, attempt, now, status (reported|superseded|rejected), result id, note
_SETTLE = (
    _COMMON
    + r"""
local id, attempt, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = P .. 'req:' .. id
attempt_status(id, attempt, ARGV[5], now, ARGV[6])
if attempt ~= '' and ARGV[5] ~= 'reported' then
  note(id, now, 'result-' .. ARGV[5], attempt .. ': ' .. ARGV[7])
end
local state = redis.call('HGET', key, 'state')
if state ~= 'provisioned' and state ~= 'failed' then return state or '' end
local detail = redis.call('HGET', key, 'outcome_detail_id')
local all = redis.call('HGETALL', key .. ':attempts')
for i = 2, #all, 2 do
  local a = cjson.decode(all[i])
  if a.detail == detail and (a.status == 'pending' or a.status == 'posting') then
    return state
  end
end
redis.call('HSET', key, 'reported_at', now)
set_state(id, 'reported', now, 'reported', attempt)
return 'reported'
"""
)

# ARGV: prefix, id, attempt, detail, now
_ADD_ATTEMPT = (
    _COMMON
    + r"""
local key = P .. 'req:' .. ARGV[2]
local fresh = redis.call('HSETNX', key .. ':attempts', ARGV[3],
  cjson.encode({detail = ARGV[4], status = 'pending', at = tonumber(ARGV[5])}))
if fresh == 1 then redis.call('HSET', key, 'attempt_id', ARGV[3]) end
return fresh
"""
)

# ARGV: prefix, id, attempt, now, note.  An attempt settled without a result (``rejected``)
# that Pax8 says is acknowledged after all is owed again; a reported record goes back to its
# outcome's state so the report task posts it.
_REOPEN = (
    _COMMON
    + r"""
local id, attempt, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = P .. 'req:' .. id
local raw = redis.call('HGET', key .. ':attempts', attempt)
if not raw or cjson.decode(raw).status ~= 'rejected' then return '' end
attempt_status(id, attempt, 'pending', now, nil)
local state = redis.call('HGET', key, 'state')
if state == 'reported' then
  local outcome = redis.call('HGET', key, 'outcome')
  state = outcome == 'Fail' and 'failed' or 'provisioned'
  set_state(id, state, now, 'reopened', attempt .. ': ' .. ARGV[5])
else
  note(id, now, 'reopened', attempt .. ': ' .. ARGV[5])
end
return state
"""
)


# ARGV: prefix, cutoff, id...  Deletes records still ``reported`` since before cutoff.
_PURGE = r"""
local P, cutoff, purged = ARGV[1], tonumber(ARGV[2]), 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = P .. 'req:' .. id
  local state = redis.call('HGET', key, 'state')
  local since = tonumber(redis.call('HGET', key, 'state_at') or '0') or 0
  if state == 'reported' and since < cutoff then
    redis.call('DEL', key, key .. ':attempts', key .. ':history', key .. ':report-lock')
    redis.call('ZREM', P .. 'state:reported', id)
    redis.call('ZREM', P .. 'index', id)
    purged = purged + 1
  elseif not state then
    redis.call('ZREM', P .. 'state:reported', id)
    redis.call('ZREM', P .. 'index', id)
  end
end
return purged
"""


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


@dataclass(frozen=True)
class Attempt:
    """One attempt the ledger owes (or owed) a result."""

    id: str
    detail_id: str
    status: str
    at: float
    result_id: str | None = None


@dataclass(frozen=True)
class Record:
    """A provision request as the ledger knows it."""

    id: str
    state: str
    type: str
    source: str
    simulation: bool
    detail_id: str
    attempt_id: str
    payload: str = field(repr=False)
    outcome: str = ""
    outcome_detail_id: str = ""
    external_ids: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    result_message: str = ""
    error: str = ""
    retries: int = 0
    claims: int = 0
    generation: int = 0
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
            state=data.get("state", ""),
            type=data.get("type", ""),
            source=data.get("source", "pax8"),
            simulation=data.get("simulation") == "1",
            detail_id=data.get("detail_id", ""),
            attempt_id=data.get("attempt_id", ""),
            payload=data.get("payload", ""),
            outcome=data.get("outcome", ""),
            outcome_detail_id=data.get("outcome_detail_id", ""),
            external_ids=json.loads(data.get("external_ids") or "{}"),
            metadata=json.loads(data.get("metadata") or "{}"),
            result_message=data.get("result_message", ""),
            error=data.get("error", ""),
            retries=int(number("retries")),
            claims=int(number("claims")),
            generation=int(number("generation")),
            created_at=number("created_at"),
            updated_at=number("updated_at"),
            state_at=number("state_at"),
            webhook_id=data.get("webhook_id", ""),
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view without the raw payload."""
        return {
            "id": self.id,
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
class Change:
    """What a ledger script decided: ``action`` and the state the record was in."""

    action: str
    previous: str


class Ledger:
    """Typed access to the ledger's records and transitions."""

    def __init__(self, client: redis.Redis, prefix: str = "ff:") -> None:
        self.redis = client
        self.prefix = prefix
        self._accept = client.register_script(_ACCEPT)
        self._mark_queued = client.register_script(_MARK_QUEUED)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._retry = client.register_script(_RETRY)
        self._dead = client.register_script(_DEAD)
        self._reset = client.register_script(_RESET)
        self._mark_attempt = client.register_script(_MARK_ATTEMPT)
        self._reopen = client.register_script(_REOPEN)
        self._settle = client.register_script(_SETTLE)
        self._add_attempt = client.register_script(_ADD_ATTEMPT)
        self._purge = client.register_script(_PURGE)

    # -- keys ----------------------------------------------------------------------------

    def key(self, request_id: str) -> str:
        """The record's hash key."""
        return f"{self.prefix}req:{request_id}"

    def _run(self, script: Any, *args: object) -> Any:
        return script(args=[self.prefix, *args])

    @staticmethod
    def _change(reply: Any) -> Change:
        action, previous = reply
        return Change(_text(action), _text(previous))

    # -- intake --------------------------------------------------------------------------

    def accept(
        self,
        notice: Notice,
        message: tuple[str, str] | None = None,
        now: float | None = None,
    ) -> Change:
        """Record a notification; the action says what to enqueue.

        ``queued``: ``message`` (queue, raw task message) was pushed in the same script;
        ``provision``: enqueue the per-type task (then :meth:`mark_queued`);
        ``report``: a new attempt for a finished detail, enqueue a report;
        ``inflight``: already queued or running, the new attempt is noted;
        ``duplicate``: seen before, nothing to do.
        """
        return self._change(
            self._run(
                self._accept,
                notice.request_id,
                now or time.time(),
                notice.source,
                notice.type,
                "1" if notice.simulation else "0",
                notice.detail_id,
                notice.attempt_id,
                notice.webhook_id,
                notice.payload,
                message[0] if message else "",
                message[1] if message else "",
            )
        )

    def mark_queued(self, request_id: str, detail_id: str, now: float | None = None) -> str:
        """``received`` → ``queued`` once the task is published; returns the state after."""
        return _text(self._run(self._mark_queued, request_id, detail_id, now or time.time()))

    def add_attempt(self, request_id: str, attempt_id: str, detail_id: str) -> bool:
        """Owe a result to ``attempt_id`` (an attempt created by us); True if new."""
        return bool(self._run(self._add_attempt, request_id, attempt_id, detail_id, time.time()))

    # -- provisioning --------------------------------------------------------------------

    def claim(
        self,
        request_id: str,
        detail_id: str,
        task_id: str,
        lease_seconds: float,
        max_claims: int,
        now: float | None = None,
    ) -> Change:
        """Take the record for provisioning ``detail_id``.

        ``claimed``: go ahead; ``done``: the detail has an outcome (report it);
        ``busy``: another live task holds it; ``stale``: a newer detail replaced it;
        ``dead``/``dead_now``: given up (``dead_now``: by this call, the task kept
        dying with its worker); ``missing``: no record.
        """
        now = now or time.time()
        return self._change(
            self._run(
                self._claim, request_id, detail_id, task_id, now, now + lease_seconds, max_claims
            )
        )

    def finish(
        self,
        request_id: str,
        detail_id: str,
        task_id: str,
        outcome: str,
        external_ids: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        message: str = "",
    ) -> Change:
        """Store the vendor's outcome (``Success`` / ``Fail``) if the claim still holds."""
        return self._change(
            self._run(
                self._finish,
                request_id,
                detail_id,
                task_id,
                time.time(),
                outcome,
                json.dumps(external_ids or {}),
                json.dumps(metadata or {}, default=str),
                message,
            )
        )

    def release_for_retry(
        self, request_id: str, detail_id: str, task_id: str, error: str
    ) -> Change:
        """``provisioning`` → ``queued`` before a countdown retry; ``previous`` is the count."""
        return self._change(
            self._run(self._retry, request_id, detail_id, task_id, time.time(), error)
        )

    def mark_dead(
        self, request_id: str, error: str, task_id: str = "", event: str = "dead"
    ) -> Change:
        """Give up on the request (only if ``task_id`` still holds it, when given)."""
        return self._change(self._run(self._dead, request_id, task_id, time.time(), error, event))

    def reset(
        self,
        request_id: str,
        *,
        event: str,
        note: str = "",
        new_generation: bool = False,
        only_from: Iterable[str] = (),
    ) -> Change:
        """Back to ``received`` (replay, reconciliation); refused outside ``only_from``."""
        return self._change(
            self._run(
                self._reset,
                request_id,
                time.time(),
                "1" if new_generation else "0",
                event,
                note,
                ",".join(only_from),
            )
        )

    # -- reporting -----------------------------------------------------------------------

    def attempts(self, request_id: str) -> list[Attempt]:
        """Every attempt recorded for the request, oldest first."""
        raw = cast(dict[Any, Any], self.redis.hgetall(self.key(request_id) + ":attempts"))
        out = []
        for attempt_id, value in raw.items():
            data = json.loads(_text(value))
            out.append(
                Attempt(
                    id=_text(attempt_id),
                    detail_id=data.get("detail", ""),
                    status=data.get("status", "pending"),
                    at=float(data.get("at") or 0),
                    result_id=data.get("result"),
                )
            )
        return sorted(out, key=lambda attempt: attempt.at)

    def mark_posting(self, request_id: str, attempt_id: str) -> None:
        """Note that a result POST for ``attempt_id`` is about to leave."""
        self._run(self._mark_attempt, request_id, attempt_id, time.time(), "posting", "", "")

    def mark_pending(self, request_id: str, attempt_id: str, event: str, note: str) -> None:
        """The attempt is still owed (its POST surely stored nothing); noted in the history."""
        self._run(self._mark_attempt, request_id, attempt_id, time.time(), "pending", event, note)

    def settle(
        self,
        request_id: str,
        attempt_id: str,
        result_id: str | None,
        status: str = "reported",
        note: str = "",
    ) -> str:
        """Mark an attempt reported (or superseded, rejected: ``note`` says why, in the
        history); returns the record's state after."""
        return _text(
            self._run(
                self._settle, request_id, attempt_id, time.time(), status, result_id or "", note
            )
        )

    def reopen(self, request_id: str, attempt_id: str, note: str) -> str:
        """Owe ``attempt_id`` a result again after it was settled ``rejected``.

        Returns the record's state after (``provisioned``/``failed`` when a report is
        due), or ``""`` when the attempt was not rejected (nothing changed).
        """
        return _text(self._run(self._reopen, request_id, attempt_id, time.time(), note))

    # -- reading -------------------------------------------------------------------------

    def get(self, request_id: str) -> Record | None:
        """The record, or None."""
        data = cast(dict[Any, Any], self.redis.hgetall(self.key(request_id)))
        if not data:
            return None
        return Record.from_hash({_text(k): _text(v) for k, v in data.items()})

    def states(self, request_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """(state, time in state) of many records in one round trip; unknown ones left out.

        A key that is not a record (corrupted by hand) reads as state ``corrupt`` rather
        than failing the whole batch.
        """
        pipe = self.redis.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.hmget(self.key(request_id), "state", "state_at")
        out: dict[str, tuple[str, float]] = {}
        replies = pipe.execute(raise_on_error=False)
        for request_id, reply in zip(request_ids, replies, strict=True):
            if isinstance(reply, redis.exceptions.ResponseError):
                out[request_id] = ("corrupt", 0.0)
                continue
            state, state_at = reply
            if state is not None:
                out[request_id] = (_text(state), float(_text(state_at) or 0))
        return out

    def history(self, request_id: str) -> list[dict[str, Any]]:
        """The record's state changes, oldest first."""
        entries = cast(list[Any], self.redis.lrange(self.key(request_id) + ":history", 0, -1))
        return [json.loads(_text(entry)) for entry in reversed(entries)]

    def counts(self) -> dict[str, int]:
        """How many records are in each state."""
        pipe = self.redis.pipeline(transaction=False)
        for state in STATES:
            pipe.zcard(f"{self.prefix}state:{state}")
        return dict(zip(STATES, (int(n) for n in pipe.execute()), strict=True))

    def in_state(self, state: str, older_than: float | None = None, limit: int = 1000) -> list[str]:
        """Ids in ``state``, oldest first; only those that entered it before ``older_than``."""
        high = "+inf" if older_than is None else f"({older_than}"
        ids = cast(
            list[Any],
            self.redis.zrangebyscore(f"{self.prefix}state:{state}", "-inf", high, 0, limit),
        )
        return [_text(i) for i in ids]

    def purge_reported(self, older_than: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` records reported before ``older_than``; how many went."""
        ids = self.in_state("reported", older_than=older_than, limit=limit)
        if not ids:
            return 0
        return int(self._run(self._purge, older_than, *ids))

    def record_reconcile_run(self, summary: dict[str, Any]) -> None:
        """Count a reconciliation run and keep its summary (for operators and /metrics)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(f"{self.prefix}reconcile:runs")
        pipe.set(f"{self.prefix}reconcile:last", json.dumps(summary))
        pipe.execute()

    def reconcile_runs(self) -> tuple[int, dict[str, Any] | None]:
        """How many reconciliations ran, and the summary of the last one."""
        values: Any = self.redis.mget(
            f"{self.prefix}reconcile:runs", f"{self.prefix}reconcile:last"
        )
        runs, last = values
        return int(runs or 0), (json.loads(last) if last else None)

    def recent(self, limit: int = 20, state: str | None = None) -> list[Record]:
        """The most recently updated records (optionally in one state)."""
        index = f"{self.prefix}state:{state}" if state else f"{self.prefix}index"
        ids = [_text(i) for i in cast(list[Any], self.redis.zrevrange(index, 0, limit - 1))]
        pipe = self.redis.pipeline(transaction=False)
        for request_id in ids:
            pipe.hgetall(self.key(request_id))
        records = []
        for data in pipe.execute():
            if data:
                records.append(Record.from_hash({_text(k): _text(v) for k, v in data.items()}))
        return records


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
