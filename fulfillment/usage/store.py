"""The usage store: the only writer of usage keys (one Lua script per change), and readers.

Every script lives in ``fulfillment/usage/lua/`` with a header naming its KEYS and ARGV,
and is given every key it touches in KEYS (:class:`fulfillment.ledger.keys.UsageKeys` builds
them, as every key name of the project is built in that module).
So a day's run is created once however many beats plan it, a job is posted by one holder
at a time, and a job's outcome lands in the run, the subscription's period and the totals
together or not at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast

import redis
from redis.commands.core import Script

from fulfillment.ledger.keys import UsageKeys, split_usage_job, usage_member
from fulfillment.ledger.refs import Scope
from fulfillment.usage.models import Claim, DayRun, JobOutcome, RunState, Subscription

LUA = Path(__file__).with_name("lua")
RECENT_POSTS = 1000
"""How many of the latest posts (of every subscription) ``ff:usage:recent`` keeps."""


@cache
def _source(name: str) -> str:
    return (LUA / f"{name}.lua").read_text()


class UsageStore:
    """Typed access to the usage keys on one Redis client."""

    def __init__(self, client: redis.Redis, prefix: str = "ff:", keep_seconds: float = 400 * 86400):
        self.redis = client
        self.keys = UsageKeys(prefix)
        self.keep_seconds = int(keep_seconds)
        self._scripts: dict[str, Script] = {}

    def _script(self, name: str) -> Script:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(_source(name))
        return script

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._script(name)(keys=list(keys), args=list(args))

    # -- subscriptions -------------------------------------------------------------------

    def register(
        self, scope: Scope, subscription_id: str, event: str, at: float, fields: dict[str, str]
    ) -> None:
        """Note a subscription ``active`` or ``ended`` at ``at`` (usage clock), with its
        latest fields (product, company, partner, the vendor's id, quantity, type)."""
        name = usage_member(scope, subscription_id)
        values = {"scope": str(scope), "id": subscription_id, **fields}
        self._run(
            "register",
            [self.keys.subscription(name), self.keys.subscriptions],
            [name, event, repr(at), json.dumps(values)],
        )

    def subscription(self, scope: Scope, subscription_id: str) -> Subscription | None:
        """One subscription, or None."""
        data = self.redis.hgetall(self.keys.subscription(usage_member(scope, subscription_id)))
        return Subscription.from_hash(_strings(data)) if data else None

    def subscriptions(self, started_before: float | None = None) -> list[Subscription]:
        """Every subscription (active before ``started_before``, usage clock), in order."""
        high = "+inf" if started_before is None else f"({started_before!r}"
        members = cast(list[Any], self.redis.zrangebyscore(self.keys.subscriptions, "-inf", high))
        out: list[Subscription] = []
        for chunk in _chunks([_text(m) for m in members], 500):
            pipe = self.redis.pipeline(transaction=False)
            for name in chunk:
                pipe.hgetall(self.keys.subscription(name))
            for data in pipe.execute():
                if data:
                    try:
                        out.append(Subscription.from_hash(_strings(data)))
                    except (KeyError, ValueError):
                        continue  # written by hand: not a subscription to post for
        return out

    # -- runs and jobs -------------------------------------------------------------------

    def plan(self, day: str, now_iso: str, jobs: Sequence[str]) -> bool:
        """Create ``day``'s run with ``jobs``; False when the day already has one."""
        keys = [self.keys.day(day), self.keys.pending(day), self.keys.days]
        return bool(
            self._run("plan", keys, [day, repr(time.time()), now_iso, self.keep_seconds, *jobs])
        )

    def run(self, day: str) -> DayRun | None:
        """A day's run, or None."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.day(day))
        pipe.scard(self.keys.pending(day))
        data, pending = pipe.execute()
        if not data:
            return None
        values = _strings(data)
        counts = {o.value: int(values.get(o.value, 0)) for o in JobOutcome}
        return DayRun(
            day=day,
            state=RunState(values.get("state", RunState.RUNNING)),
            jobs=int(values.get("jobs", 0)),
            pending=int(pending),
            counts=counts,
            created_at=float(values.get("created_at") or 0),
            finished_at=float(values.get("finished_at") or 0),
            now=values.get("now", ""),
        )

    def last_activity(self, day: str) -> float:
        """When a job of ``day``'s run was last claimed or finished (real time)."""
        value = self.redis.hget(self.keys.day(day), "last_activity")
        return float(_text(value) or 0)

    def days(self, limit: int = 10) -> list[str]:
        """The latest runs' days, newest first."""
        return [
            _text(d) for d in cast(list[Any], self.redis.zrevrange(self.keys.days, 0, limit - 1))
        ]

    def pending(self, day: str) -> list[str]:
        """The jobs of ``day``'s run not finished yet."""
        return sorted(
            _text(j) for j in cast(Iterable[Any], self.redis.smembers(self.keys.pending(day)))
        )

    def claim(self, day: str, job: str, token: str, lease_seconds: float) -> Claim:
        """Take ``job`` (see ``claim.lua``), reading its subscription in the same call."""
        now = time.time()
        scope, subscription_id, _ = split_usage_job(job)
        keys = [
            self.keys.job(day, job),
            self.keys.pending(day),
            self.keys.day(day),
            self.keys.subscription(usage_member(scope, subscription_id)),
        ]
        reply = self._run(
            "claim", keys, [job, token, repr(now), repr(now + lease_seconds), self.keep_seconds]
        )
        action, attempts, next_batch, lines, *flat = reply
        fields = {_text(k): _text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
        subscription = None
        if fields:
            try:
                subscription = Subscription.from_hash(fields)
            except (KeyError, ValueError):
                subscription = None  # written by hand: posted with what the job name says
        return Claim(_text(action), int(attempts), int(next_batch), _text(lines), subscription)

    def hand_back(
        self, day: str, job: str, token: str, next_batch: int, lines: str, error: str
    ) -> bool:
        """Give the job back for a retry (resuming at ``next_batch`` with ``lines``)."""
        args = [token, next_batch, lines, error[:1000]]
        return bool(self._run("hand_back", [self.keys.job(day, job)], args))

    def finish(
        self,
        day: str,
        job: str,
        token: str,
        outcome: JobOutcome,
        *,
        scope: Scope,
        subscription_id: str,
        period: str,
        closing: bool,
        message: str = "",
        lines: int = 0,
    ) -> str:
        """Record the job's outcome (``ok``, ``lost`` or ``done``: see ``finish.lua``)."""
        name = usage_member(scope, subscription_id)
        keys = [
            self.keys.job(day, job),
            self.keys.pending(day),
            self.keys.day(day),
            self.keys.period(name, period),
            self.keys.closed(period),
            self.keys.stats,
        ]
        args = [
            job,
            token,
            outcome.value,
            repr(time.time()),
            "1" if closing else "0",
            name,
            message[:1000],
            day,
            self.keep_seconds,
            "1" if outcome.satisfied else "0",
            lines,
        ]
        return _text(self._run("finish", keys, args))

    # -- posts ---------------------------------------------------------------------------

    def record_post(
        self,
        scope: Scope,
        subscription_id: str,
        period: str,
        record: dict[str, Any],
        counts: dict[str, int],
    ) -> None:
        """Keep one post (the lines sent, Pax8's answer) and add ``counts`` to the totals."""
        name = usage_member(scope, subscription_id)
        keys = [self.keys.posts(name, period), self.keys.recent, self.keys.stats]
        pairs = [item for pair in counts.items() for item in pair]
        self._run(
            "record",
            keys,
            [json.dumps(record, default=str), self.keep_seconds, RECENT_POSTS, *pairs],
        )

    def posts(self, scope: Scope, subscription_id: str, period: str) -> list[dict[str, Any]]:
        """Every post of a subscription's period, oldest first."""
        key = self.keys.posts(usage_member(scope, subscription_id), period)
        return [json.loads(_text(r)) for r in cast(list[Any], self.redis.lrange(key, 0, -1))]

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest posts, newest first."""
        items = cast(list[Any], self.redis.lrange(self.keys.recent, 0, limit - 1))
        return [json.loads(_text(r)) for r in items]

    def stats(self) -> dict[str, int]:
        """Running totals (``posts_ok``, ``lines_ok``, ``posts_rate_limited``, ``jobs_*``...)."""
        return {
            _text(k): int(_text(v))
            for k, v in cast(dict[Any, Any], self.redis.hgetall(self.keys.stats)).items()
        }

    # -- periods -------------------------------------------------------------------------

    def period_state(self, scope: Scope, subscription_id: str, period: str) -> dict[str, str]:
        """A subscription's period: ``last_outcome``, ``last_success_at``, ``closed_at``..."""
        return _strings(
            self.redis.hgetall(self.keys.period(usage_member(scope, subscription_id), period))
        )

    def closed(self, period: str) -> set[str]:
        """The subscriptions (``<scope>:<id>``) whose closing totals of ``period`` Pax8 has."""
        return {
            _text(m) for m in cast(Iterable[Any], self.redis.smembers(self.keys.closed(period)))
        }

    # -- the limiter and the alert -------------------------------------------------------

    def take_token(self, per_minute: int, burst: int) -> float:
        """One post's place under the shared limit: 0 when it may leave now, else the
        seconds to wait before asking again."""
        interval_us = int(60_000_000 / per_minute)
        wait_us = int(self._run("ratelimit", [self.keys.ratelimit], [interval_us, burst]))
        return wait_us / 1_000_000

    def set_overdue(self, period: str, counts: dict[Scope, int]) -> None:
        """Keep the latest overdue check: how many subscriptions of each scope."""
        pairs = [item for scope, n in counts.items() for item in (str(scope), n)]
        self._run("overdue", [self.keys.overdue], [period, repr(time.time()), *pairs])

    def overdue(self) -> tuple[str, float, dict[Scope, int]]:
        """The latest overdue check: (period, when, count per scope)."""
        data = _strings(self.redis.hgetall(self.keys.overdue))
        counts = {
            Scope(name.removeprefix("scope:")): int(value)
            for name, value in data.items()
            if name.startswith("scope:")
        }
        return data.get("period", ""), float(data.get("checked_at") or 0), counts

    def mark_alerted(self, period: str, scope: Scope) -> bool:
        """True the first time the overdue alert of ``period`` in ``scope`` is noted."""
        return bool(self._run("alerted", [self.keys.alerted(period, scope)], [7 * 86400]))


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _strings(data: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in cast(dict[Any, Any], data).items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
