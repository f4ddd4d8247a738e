"""A worker's heartbeat, and what it does for workers whose heartbeat is gone.

One daemon thread in each worker's main process, started at ``worker_init`` (before the
pool forks) and stopped at ``worker_shutdown``: every ``WORKER_HEARTBEAT_SECONDS`` one
script call (``fulfillment/ledger/lua/heartbeat.lua``) records that this worker lives and
answers which workers are gone (their heartbeat older than ``WORKER_LOST_AFTER_SECONDS``,
by Redis's clock). A thread rather than a timer of the consumer's event loop: that loop
stops during a warm shutdown while the pool still runs its orders to their end (up to the
hard time limit), and a worker finishing its orders must not look dead. A pool process in
a 150 s vendor call does not stop it either. What it says is "this process is alive and
reaches Redis", not "it makes progress": a worker stuck but alive is for the platform's
liveness probe (``celery inspect ping``).

**Trust.** A worker judges others only after beating, itself, for
``WORKER_LOST_AFTER_SECONDS`` without a gap longer than two intervals. After a Redis
failover (faults 17-19), a Redis restart, or a partition or a long pause of its own, every
last heartbeat is old, and so is its own unbroken run: it declares nobody dead until every
live worker has had that long to beat again. A replacement worker started after a crash
waits the same (so recovery takes at most the lost-after time, plus two intervals and its
own start-up, after the crash).

**With trust:**

* the gone workers are handed to the broker transport, whose next sweep (in the consumer's
  event loop, every interval) puts their messages back at the front of their queues
  (``worker/broker.py``), guarded by holder: a message that went to another worker since
  stays with it;
* once per half the lost-after time among all workers, the records in flight for longer
  than the lost-after time whose task message is nowhere in Redis (not in their queue, not
  held by any worker, live or gone) are queued again with a new message (fault 4b: kombu
  takes a message with ``BRPOP`` and records it just after; a worker killed in between
  leaves it nowhere). A ``provisioning`` record counts only when the worker that claimed
  it is gone; an order whose queue is not empty is left alone (its message may wait
  there), as is any order while a delivery without a recorded holder (from a worker of
  0.1.0) names it.

A worker whose heartbeat is gone but which is only slow (paused, cut off) keeps running:
its messages went to others, its late writes are refused by the claim token, and its late
acknowledgements do not erase another's record of a message (``settle_delivery.lua``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from typing import Any

from celery import Celery

from config.settings import Settings
from fulfillment.ledger import Ledger
from fulfillment.ledger.liveness import Liveness, Look, worker_id
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.states import Changed, State
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, RedisUse, redis_client
from worker.messages import order_of
from worker.publish import CeleryPublisher

log = logging.getLogger(__name__)

LOST_NOTE = (
    "its task message was nowhere in Redis (taken by a worker that died before recording it)"
)


class Heartbeat:
    """The heartbeat of one worker process (its main process), in a daemon thread."""

    def __init__(self, settings: Settings, app: Celery, node: str) -> None:
        self.id = worker_id(node, os.getpid(), secrets.token_hex(4))
        self.interval = settings.worker_heartbeat_seconds
        self.lost_after = settings.worker_lost_after_seconds
        self._app = app
        self._settings = settings
        self._client = redis_client(settings, RedisUse.WORKER, decode=True)
        self.liveness = Liveness(self._client)
        self._ledger = Ledger(self._client)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._run_started: float | None = None  # monotonic: this unbroken run of beats
        self._last_beat: float | None = None
        self._gone: frozenset[str] = frozenset()
        self._announced: frozenset[str] = frozenset()
        self._failing = False
        self.orphaned = False
        """A channel of this worker closed holding messages (the broker transport's flag:
        its next sweep hands back those this worker no longer runs)."""
        self._beating = threading.Lock()  # the thread, and a first delivery (known())

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Beat once now (so no message is delivered to this worker before it is known),
        then every interval in a daemon thread."""
        self.beat_once()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating; leave the workers at once if no message is held in this worker's
        name any more (it closed cleanly), else others sweep it once it looks gone."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
        try:
            if self.liveness.bury(self.id, 0):
                log.info("worker %s left (nothing held in its name)", self.id)
        except REDIS_UNAVAILABLE as exc:
            log.warning("worker %s could not record that it left: %s", self.id, exc)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat_once()
            except Exception:  # noqa: BLE001 - the heartbeat must outlive any one failure
                log.exception("heartbeat of %s failed", self.id)

    # -- one beat ------------------------------------------------------------------------

    @property
    def trusted(self) -> bool:
        """Whether this worker has beaten for the lost-after time without a gap (it may
        judge others: see the module docstring)."""
        started = self._run_started
        return started is not None and time.monotonic() - started >= self.lost_after

    def known(self) -> None:
        """Make sure this worker has beaten at least once (a message held in its name by a
        worker no heartbeat ever named could not be found gone); the broker transport calls
        it before recording a delivery."""
        if self._last_beat is None:
            self.beat_once()

    def beat_once(self) -> None:
        """Record that this worker lives; note the gone workers; look for lost messages
        when it is this worker's turn."""
        with self._beating:
            self._beat()

    def _beat(self) -> None:
        try:
            beat = self.liveness.beat(
                self.id, self.lost_after, self.lost_after / 2, look=self.trusted
            )
        except REDIS_UNAVAILABLE as exc:
            self._run_started = None
            if not self._failing:
                log.warning("heartbeat of %s: Redis unavailable (%s)", self.id, exc)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat of %s: Redis answers again", self.id)
        self._failing = False
        now = time.monotonic()
        if self._last_beat is None or now - self._last_beat > 2 * self.interval:
            self._run_started = now  # a new unbroken run: judge nobody for lost-after
        self._last_beat = now
        trusted = self.trusted
        gone = beat.dead - {self.id} if trusted else frozenset()
        with self._lock:
            self._gone = gone
        if gone - self._announced:
            log.warning(
                "workers gone (no heartbeat for %gs): %s; the messages they held go back to "
                "their queues",
                self.lost_after,
                ", ".join(sorted(gone - self._announced)),
            )
        self._announced = gone
        if trusted and beat.look is not None:
            self.rescue(beat.look)

    def gone(self) -> frozenset[str]:
        """The workers whose messages the broker transport should put back (empty until this
        worker is trusted)."""
        with self._lock:
            return self._gone

    # -- lost messages -------------------------------------------------------------------

    def rescue(self, look: Look) -> list[Ref]:
        """Queue again the records of ``look`` whose task message is nowhere in Redis; the
        refs queued again."""
        candidates = [*look.queued, *look.provisioning]
        if not candidates:
            return []
        ledger = self._ledger
        held = {holder.member for holder in ledger.holders()}
        for entry in ledger.unheld_deliveries():
            held.add(_order_of_entry(entry))
        fields = ledger.in_flight(candidates)
        # The queue its route's worker consumes (the per-type one without a routes file).
        publisher = CeleryPublisher(self._app, self._settings.routes)
        queues: dict[Ref, str] = {}
        for ref, record in zip(candidates, fields, strict=True):
            if record["state"] not in (State.QUEUED, State.PROVISIONING) or ref.member in held:
                continue
            claimed_by = record["claim_worker"]
            if record["state"] == State.PROVISIONING and (
                not claimed_by or claimed_by in look.live
            ):
                continue  # a live claim, or one of 0.1.0 (the visibility timeout's to judge)
            try:
                queues[ref] = publisher.queue(record["type"], record["route"])
            except ValueError:
                continue
        if not queues:
            return []
        names = sorted(set(queues.values()))
        depths, _ = ledger.queue_depths(names)
        waiting = {name for name, depth in zip(names, depths, strict=True) if depth}
        requeued = []
        for ref, record in zip(candidates, fields, strict=True):
            queue = queues.get(ref)
            if queue is None or queue in waiting:
                continue
            message = publisher.provision_message(
                ref, record["type"], record["detail_id"], record["route"]
            )
            change = ledger.requeue_lost(
                ref,
                record["detail_id"],
                State(record["state"]),
                record["state_at"],
                message,
                LOST_NOTE,
            )
            if change.action is Changed.OK:
                requeued.append(ref)
                log.warning(
                    "request_id=%s state=%s: queued again (%s)", ref, record["state"], LOST_NOTE
                )
        return requeued


def _order_of_entry(entry: str) -> str:
    """The order a kombu unacked entry (JSON [payload, exchange, routing key]) is for."""
    try:
        payload: Any = json.loads(entry)[0]
    except (ValueError, IndexError, TypeError, KeyError):
        return ""
    return order_of(payload) if isinstance(payload, dict) else ""


# -- this process's heartbeat ----------------------------------------------------------------

_current: Heartbeat | None = None


def current() -> Heartbeat | None:
    """This worker's heartbeat: set in its main process, and inherited (not running) by its
    pool processes; None in any other process."""
    return _current


def current_worker() -> str:
    """The id of the worker this process belongs to ("" outside a worker)."""
    return _current.id if _current is not None else ""


def start(settings: Settings, app: Celery, node: str) -> Heartbeat:
    """Start this worker process's heartbeat (its main process, before the pool forks)."""
    global _current
    heartbeat = Heartbeat(settings, app, node)
    heartbeat.start()
    _current = heartbeat
    log.info(
        "worker %s beats every %gs; a worker silent for %gs is gone",
        heartbeat.id,
        heartbeat.interval,
        heartbeat.lost_after,
    )
    return heartbeat


def stop() -> None:
    """Stop this process's heartbeat (at worker shutdown)."""
    global _current
    heartbeat, _current = _current, None
    if heartbeat is not None:
        heartbeat.stop()
