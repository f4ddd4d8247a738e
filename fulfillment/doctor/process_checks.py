"""The processes: every queue consumed, beat reconciling, clocks in step, nothing waiting
for an operator.

The workers are asked through Celery's remote control
(:class:`~fulfillment.doctor.context.Workers`); beat is judged by what it leaves behind
(the last reconciliation in the ledger); the clocks against Redis's ``TIME``, which every
worker shares: a claim's deadline is a timestamp one worker writes and another reads.
"""

from __future__ import annotations

from typing import Any, cast

from fulfillment.doctor.context import Doctor
from fulfillment.doctor.result import Finding, fail, ok, warn
from fulfillment.ledger.states import State
from fulfillment.names import RECONCILE, ROUTE_QUEUE_PREFIX, queues_with

WAITING_WARN_SECONDS = 600.0
"""An order waiting longer than this for a worker is worth a look (as the alert says)."""

CLOCK_FAIL_SECONDS = 2.0
"""A worker clock further than this from Redis's makes a call's deadline unreliable."""

CLOCK_WARN_SECONDS = 0.5


def duration(seconds: float) -> str:
    """``4s``, ``12m``, ``3h``, ``2d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def check_queues(doctor: Doctor) -> Finding:
    """Every ``fulfillment.*`` queue has a consumer; how much waits, and for how long."""
    if doctor.workers is None:
        return warn("not checked: no Celery app at hand", "run fulfill doctor")
    consumers = doctor.workers.queues(doctor.inspect_timeout)
    if not consumers:
        return fail(
            "no worker answered: every order waits in its queue",
            "start workers (Procfile worker) on the Redis of REDIS_URL",
        )
    consumed = {queue for queues in consumers.values() for queue in queues}
    routes = doctor.settings.routes
    every = queues_with([route.name for route in routes if route.own_queue])
    missing = [queue for queue in every if queue not in consumed]
    ledger = doctor.services.ledger
    depths, held = ledger.queue_depths(every)
    oldest = ledger.oldest([State.RECEIVED, State.QUEUED])
    since = [at for at in oldest.values() if at]
    waited = max(0.0, doctor.now() - min(since)) if since else 0.0
    waiting = f"{sum(depths)} message(s) waiting, {held} held by workers; " + (
        f"the oldest waiting order {duration(waited)} old" if since else "no order waiting"
    )
    if missing:
        backends = [q.removeprefix(ROUTE_QUEUE_PREFIX) for q in missing if _is_route(q)]
        whose = f" (the orders of backend {', '.join(backends)})" if backends else ""
        return fail(
            f"no worker consumes {', '.join(missing)}{whose}: those orders wait forever; {waiting}",
            "start a worker without -Q or WORKER_ROUTES (it consumes every queue), or give "
            "those routes a worker (WORKER_ROUTES=NAME)",
        )
    workers = f"{len(consumers)} worker(s) consume all {len(every)} queues"
    if waited > WAITING_WARN_SECONDS:
        return warn(
            f"{workers}; {waiting}",
            "look at the workers' logs and fulfill status --state queued (a slow vendor?)",
        )
    return ok(f"{workers}; {waiting}")


def _is_route(queue: str) -> bool:
    return queue.startswith(ROUTE_QUEUE_PREFIX)


def check_beat(doctor: Doctor) -> Finding:
    """Beat is alive: the last reconciliation is younger than two intervals."""
    interval = doctor.settings.reconcile_interval_seconds
    _, last = doctor.services.ledger.reconcile_runs()
    every = f"every {duration(interval)} (RECONCILE_INTERVAL_SECONDS)"
    at = last.get("at") if last else None
    if not isinstance(at, int | float):
        return warn(
            f"no reconciliation recorded yet (beat runs the first one an interval after it "
            f"starts, {every})",
            f"if this lasts, start beat (Procfile beat) and a worker consuming {RECONCILE}",
        )
    age = max(0.0, doctor.now() - float(at))
    if age > 2 * interval:
        return fail(
            f"the last reconciliation ended {duration(age)} ago, {every}: beat is not running, "
            f"or no worker consumes {RECONCILE}; lost webhooks are not recovered",
            f"start beat (one per deployment, Procfile beat); check a worker consumes {RECONCILE}",
        )
    assert last is not None
    errors = cast(list[Any], last.get("errors") or [])
    if errors:
        return warn(
            f"the last reconciliation ({duration(age)} ago) reported {len(errors)} error(s), "
            f"e.g. {errors[0]}",
            "see beat's and the workers' logs (fulfill reconcile prints a run's summary)",
        )
    return ok(f"the last reconciliation ended {duration(age)} ago, {every}")


def check_clocks(doctor: Doctor) -> Finding:
    """Every worker's clock is within :data:`CLOCK_FAIL_SECONDS` of Redis's ``TIME``."""
    if doctor.workers is None:
        return warn("not checked: no Celery app at hand", "run fulfill doctor")
    redis = doctor.services.redis
    before = _redis_time(redis.time())
    clocks = doctor.workers.clocks(doctor.inspect_timeout)
    after = _redis_time(redis.time())
    if not clocks:
        return warn("not checked: no worker answered", "see the queues row")
    silent = sorted(name for name, at in clocks.items() if at is None)
    # A reply was made between the two readings of Redis's clock: outside that window by
    # more than the bound, the worker's clock is off by at least that much.
    offsets = {
        name: (at - after if at > after else before - at if at < before else 0.0)
        for name, at in clocks.items()
        if at is not None
    }
    if offsets:
        name, off = max(offsets.items(), key=lambda item: item[1])
        if off > CLOCK_FAIL_SECONDS:
            return fail(
                f"the clock of {name} is {off:.1f}s off Redis's (more than "
                f"{CLOCK_FAIL_SECONDS:g}s): a vendor call may be repeated before its deadline",
                "run NTP (chrony, systemd-timesyncd) on every worker host",
            )
    if silent:
        return warn(
            f"{', '.join(silent)} did not report a clock (an older version?)",
            "upgrade and restart those workers",
        )
    name, off = max(offsets.items(), key=lambda item: item[1])
    seen = f"{len(offsets)} worker clock(s) within {max(off, 0.01):.2f}s of Redis's"
    if off > CLOCK_WARN_SECONDS:
        return warn(f"{seen} ({name} the furthest)", "run NTP on every worker host")
    return ok(seen)


def check_orders(doctor: Doctor) -> Finding:
    """No dead order waits for an operator; failed ones are on their way to Pax8."""
    counts = doctor.services.ledger.counts()
    dead, failed = counts.get(State.DEAD, 0), counts.get(State.FAILED, 0)
    in_flight = sum(counts.get(s, 0) for s in (State.RECEIVED, State.QUEUED, State.PROVISIONING))
    if dead:
        return fail(
            f"{dead} dead order(s): nothing retries them and Pax8 has no result",
            "fulfill status --state dead, fix the cause, then fulfill replay ID "
            "(or the console's Dead & failed page)",
        )
    if failed:
        return warn(
            f"{failed} failed order(s) whose Fail is not reported yet",
            "fulfill status --state failed; reconciliation reports them again",
        )
    return ok(f"no dead or failed order; {in_flight} in flight")


def _redis_time(reply: Any) -> float:
    seconds, micros = reply
    return int(seconds) + int(micros) / 1_000_000
