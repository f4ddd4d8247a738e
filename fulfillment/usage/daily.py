"""The daily run: each beat tick plans the day's jobs once, hands them out, resumes a run a
crash left unfinished, and checks what is overdue.

A **job** is one subscription's period on one day: the current period for every
subscription active in it, and on the 1st and 2nd also the previous period's closing
totals (:func:`fulfillment.usage.periods.periods_to_post`), in each environment that has
credentials. The day's run is created at most once (``plan.lua``: two beats, or a beat and
``fulfill usage run``, never double it), under a lock so only one planner reads the
registry at a time. Its jobs go out in tasks of ``USAGE_CHUNK_SIZE``; a job is posted by
one holder at a time (``claim.lua``) and finished once (``finish.lua``). When a day's run
still has jobs and none was touched for longer than a claim's lease (its messages were lost
with a broker, or a worker died after handing a job back), the next tick hands them out
again: a job finished meanwhile is skipped, one being posted is left to its holder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from fulfillment.ledger.keys import usage_job
from fulfillment.ledger.locks import RedisLock
from fulfillment.usage import periods
from fulfillment.usage.clock import iso
from fulfillment.usage.context import UsageContext
from fulfillment.usage.overdue import Check, check, scopes

log = logging.getLogger(__name__)


@dataclass
class Tick:
    """What one tick did."""

    day: str
    now: str
    planned: bool = False
    resumed: bool = False
    jobs: int = 0
    chunks: list[list[str]] = field(default_factory=list)
    reason: str = ""
    overdue: int = 0
    check: Check | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (without the chunks' job names)."""
        out = asdict(self)
        out.pop("check")
        out["chunks"] = len(self.chunks)
        return out


def plan_jobs(context: UsageContext, now: datetime) -> list[str]:
    """The jobs of a run at ``now``, in a stable order."""
    wanted = set(scopes(context))
    subscriptions = [
        s for s in context.store.subscriptions(started_before=now.timestamp()) if s.scope in wanted
    ]
    return [
        usage_job(sub.member, period)
        for period in periods.periods_to_post(now)
        for sub in subscriptions
        if sub.active_in(period)
    ]


def chunks(jobs: list[str], size: int) -> list[list[str]]:
    """``jobs`` in tasks of ``size``."""
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def tick(context: UsageContext, now: datetime | None = None) -> Tick:
    """One beat tick (see the module docstring)."""
    now = now or context.clock.now()
    out = Tick(day=now.date().isoformat(), now=iso(now))
    out.check = check(context, now)
    out.overdue = len(out.check.overdue)
    if not context.policy.due(now):
        out.reason = f"before the day's run time ({context.policy.run_at:%H:%M} UTC)"
        return out
    store = context.store
    lock = RedisLock(store.redis, store.keys.run_lock, context.policy.lease_seconds)
    if not lock.acquire():
        out.reason = "another tick is planning"
        return out
    try:
        run = store.run(out.day)
        if run is None:
            jobs = plan_jobs(context, now)
            if store.plan(out.day, out.now, jobs):
                out.planned, out.jobs = True, len(jobs)
                out.chunks = chunks(jobs, context.policy.chunk_size)
                log.info("usage run of %s planned: %d jobs", out.day, len(jobs))
            else:
                out.reason = "the day's run exists"
        elif (
            run.pending
            and time.time() - store.last_activity(out.day) > context.policy.lease_seconds
        ):
            pending = store.pending(out.day)
            out.resumed, out.jobs = True, len(pending)
            out.chunks = chunks(pending, context.policy.chunk_size)
            log.warning("usage run of %s resumed: %d jobs left", out.day, len(pending))
        else:
            out.reason = f"the day's run is {run.state} ({run.pending} jobs pending)"
    finally:
        lock.release()
    return out
