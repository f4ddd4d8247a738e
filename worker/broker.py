"""The Redis broker transport the worker uses: kombu's, with its close made safe and every
delivery's holder recorded.

**Safe close.** Kombu's Redis ``Channel.close`` first reads the reply of a ``BRPOP`` it left
outstanding. When Redis went away, that read raises a connection error and ``close``
returns before it has closed anything. Celery then closes the connection a second time,
after detaching the transport, and the channel's close (now restoring its unacknowledged
messages) needs the detached transport's URL: ``AttributeError: 'NoneType' object has no
attribute 'hostname'``, which Celery treats as unrecoverable. The worker exits on a Redis
restart whenever it held a task and waited for another (fault 07b). This channel finishes
closing on the first call instead, while the transport is attached.

**Holders** (:class:`HeldQoS`). Kombu records each delivered message in its ``unacked`` hash
and gives it back only after the visibility timeout (an hour by default): it does not know
who holds it. In a worker (one with a heartbeat, ``worker/liveness.py``) each delivery also
records its holder and the order it is for, in the same script call (one round trip, as
kombu's own pipeline was); an acknowledgement forgets it only if this worker still holds it;
a message handed back (a reject with requeue, a channel closing, a warm shutdown) goes back
only if it is still this worker's. Every interval the consumer's event loop puts back the
messages of the workers the heartbeat found gone, at the front of their queues, and, far
less often, runs kombu's own visibility-timeout sweep, now only the last net for a message
with no recorded holder. Scripts: ``fulfillment/ledger/lua/deliver.lua`` and its siblings.

**One client per channel** (:class:`OneClient`). Kombu's ``conn_or_acquire`` builds a new
``redis.Redis`` object for every operation that is not given one (a publish, a delivery's
record, an acknowledgement: each ``MULTI``/``EXEC`` or script call), about 100 µs of CPU
each, although every one of them draws its connections from the same pool. This channel
builds one and reuses it while the pool is the same (docs/performance.md#kombus-redis-clients).

:func:`install` makes the ``redis://`` and ``rediss://`` schemes use these channels, and
``sentinel://`` (``REDIS_SENTINELS``) kombu's Sentinel transport with the same close and
QoS, whose connections ask the sentinels for the master (a master killed or demoted in a
failover is the same lost connection), so URLs, logs and Flower's broker view stay as they
are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from time import monotonic, time
from typing import Any

from celery.worker import state
from kombu.transport import TRANSPORT_ALIASES, _transport_cache, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from fulfillment.ledger.keys import Keys
from fulfillment.ledger.liveness import Liveness, holder_value
from fulfillment.ledger.records import Holder
from worker import liveness
from worker.messages import order_of

TRANSPORT = "worker.broker:Transport"
SENTINEL_TRANSPORT = "worker.broker:SentinelTransport"

log = logging.getLogger(__name__)
SCHEMES = {"redis": TRANSPORT, "rediss": TRANSPORT, "sentinel": SENTINEL_TRANSPORT}


class SafeClose:
    """A Redis channel's ``close`` that completes even when Redis is gone (a mixin before
    one of kombu's Redis channels)."""

    closed: bool
    connection_errors: tuple[type[BaseException], ...]

    def close(self) -> None:
        """Close, and stay closed, whether or not Redis answers."""
        try:
            super().close()  # type: ignore[misc]  # kombu's channel, after this in the MRO
        except self.connection_errors as exc:
            if not self.closed:
                self._finish_close(exc)
            else:
                self._lost(exc)

    def _finish_close(self, error: BaseException) -> None:
        """The steps kombu's close skipped; none of them needs a live connection."""
        channel: Any = self
        channel._in_poll = None
        channel.connection.cycle.discard(self)
        channel._disconnect_pools()  # the Sentinel channel's also closes its sentinels
        channel._close_clients()
        try:
            # Marks the channel closed, then puts unacknowledged messages back.
            virtual.Channel.close(self)
        except self.connection_errors as exc:
            self._lost(exc)
        else:
            log.info("broker channel closed after a connection error: %r", error)

    def _lost(self, error: BaseException) -> None:
        # Not raised: the channel is closed, and callers (Celery's bootsteps) that catch
        # connection errors on a connection they already let go of turn it into an
        # AttributeError. Nothing is lost: the messages are still in Redis's unacked set,
        # in this worker's name; its next sweep on a new connection hands back those it
        # no longer runs (without a heartbeat: after the visibility timeout).
        heart = liveness.current()
        if heart is not None:
            heart.orphaned = True
        log.warning(
            "broker unreachable while closing a channel (%r); any message it held "
            "unacknowledged goes back %s",
            error,
            "once Redis answers" if heart is not None else "after the visibility timeout",
        )


class OneClient:
    """A Redis channel that reuses one ``redis.Redis`` client for the operations kombu would
    build a new one for (a mixin before one of kombu's Redis channels).

    Safe because a ``redis.Redis`` client holds no connection of its own (no
    ``single_connection_client``): each command, and each pipeline's ``EXECUTE``, takes a
    connection from the channel's pool and gives it back, and redis-py documents such a
    client as safe to share between threads (and so between a gevent pool's greenlets). A
    connection that died is dropped by the pool as before, and the next command opens a new
    one; under Sentinel the pool asks the sentinels for the master on every new connection,
    so a failover needs no new client either. The client is bound to the pool it was built
    on: when kombu replaces the pool (after a fork, a failed start, a close) the next
    operation builds a new client on the new pool.
    """

    _one_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """``client`` if given, else this channel's one client (kombu: a new one)."""
        yield client if client else self._shared_client()

    def _shared_client(self) -> Any:
        channel: Any = self
        pool = channel.pool  # built on first use, None again after _disconnect_pools
        shared = self._one_client
        if shared is None or shared.connection_pool is not pool:
            shared = self._one_client = channel._create_client()
        return shared


class HeldQoS(kombu_redis.QoS):  # type: ignore[misc]  # kombu is untyped
    """Kombu's Redis QoS that records who holds each delivery (see the module docstring).

    In a process without a heartbeat (the receiver, beat, the CLI: they only publish) it is
    kombu's own.
    """

    channel: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handing_back: set[str] = set()

    @cached_property
    def _scripts(self) -> Liveness:
        return Liveness(self.channel.client, Keys(), self.unacked_key, self.unacked_index_key)

    # -- a delivery and its end ----------------------------------------------------------

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record the delivery and its holder in one script call (kombu: a pipeline)."""
        heart = liveness.current()
        if heart is None:
            super().append(message, delivery_tag)
            return
        heart.known()
        delivery = message.delivery_info
        entry = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        holder = holder_value(heart.id, order_of(message._raw))
        with self.channel.conn_or_acquire() as client:
            self._scripts.deliver(delivery_tag, entry, holder, time(), client)
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        """Forget the delivery, unless another worker holds it now (this one was taken for
        gone, and its message went back to its queue)."""
        heart = liveness.current()
        if heart is None:
            super().ack(delivery_tag)
            return
        with self.channel.conn_or_acquire() as client:
            if not self._scripts.settle(delivery_tag, heart.id, client):
                log.warning(
                    "delivery %s was taken from this worker (its heartbeat was late): its "
                    "acknowledgement is left to the worker that holds it now",
                    delivery_tag,
                )
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Drop the delivery, or hand it back (behind what waits, as kombu does; at the
        front when :meth:`hand_back` asked), if it is still this worker's."""
        heart = liveness.current()
        if heart is None:
            super().reject(delivery_tag, requeue=requeue)
            return
        if requeue:
            front = delivery_tag in self._handing_back
            self._handing_back.discard(delivery_tag)
            self.restore_held(delivery_tag, heart.id, front=front)
        else:
            with self.channel.conn_or_acquire() as client:
                self._scripts.settle(delivery_tag, heart.id, client)
        virtual.QoS.ack(self, delivery_tag)

    def hand_back(self, message: Any) -> None:
        """Put a message this worker holds and will not run back at the front of its
        queue, through kombu (the message is then rejected: nothing acknowledges it later)."""
        self._handing_back.add(message.delivery_tag)
        message.reject(requeue=True)

    def restore_unacked(self, client: Any = None) -> None:
        """At the channel's close: hand back what this worker still holds (not what was
        taken from it meanwhile)."""
        heart = liveness.current()
        if heart is None:
            super().restore_unacked(client)
            return
        running = _running_tags()
        with self.channel.conn_or_acquire(client) as conn:
            for tag in list(self._delivered):
                if tag in running:
                    # Still running (a reconnect does not stop the pool): its task acks it.
                    # If that ack cannot land, the orphan sweep hands it back.
                    heart.orphaned = True
                    continue
                self.restore_held(tag, heart.id, front=True, client=conn)
        self._delivered.clear()

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        """Kombu's visibility-timeout sweep: put the message back whoever holds it."""
        if liveness.current() is None:
            super().restore_by_tag(tag, client, leftmost)
            return
        self.restore_held(tag, "", front=not leftmost, client=client)

    def restore_held(self, tag: str, holder: str, *, front: bool, client: Any = None) -> bool:
        """Put delivery ``tag`` back on its queue if ``holder`` still holds it ("" = whoever
        does); True if it went back."""
        with self.channel.conn_or_acquire(client) as conn:
            raw = conn.hget(self.unacked_key, tag)
            if raw is None:
                if holder:  # acknowledged or put back already: forget a holder left behind
                    self._scripts.settle(tag, holder, conn)
                return False
            payload, exchange, routing_key = loads(bytes_to_str(raw))
            try:
                payload["headers"]["redelivered"] = True
                payload["properties"]["delivery_info"]["redelivered"] = True
            except KeyError:
                pass
            try:
                priority = self.channel._get_message_priority(payload, reverse=False)
                queues = [
                    self.channel._q_for_pri(queue, priority)
                    for queue in self.channel._lookup(exchange, routing_key)
                ]
            except self.channel.connection_errors:
                raise
            except Exception:  # noqa: BLE001 - kept held: the next sweep tries again
                log.exception("could not find the queue of delivery %s", tag)
                return False
            return self._scripts.restore(tag, holder, queues, dumps(payload), front, conn)

    # -- the sweep -----------------------------------------------------------------------

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        """Every tick of the consumer's loop: put back the messages of the workers the
        heartbeat found gone; every ``interval``-th tick, kombu's visibility-timeout sweep."""
        heart = liveness.current()
        if heart is not None:
            self.sweep(heart.gone(), heart.liveness, heart.lost_after)
            if heart.orphaned:
                heart.orphaned = self.reclaim(heart.id)
        super().restore_visible(start, num, interval)

    def reclaim(self, worker: str) -> bool:
        """After a channel of this worker closed holding messages (a reconnect): hand back
        the ones held in its name that it neither runs nor holds on this channel (Celery
        drops its countdown retries on a reconnect). True while some of them still run."""
        running = _running_tags()
        still = False
        with self.channel.conn_or_acquire() as conn:
            for tag, value in conn.hgetall(self._scripts.keys.holders).items():
                holder = Holder.parse(tag, value)
                if holder.worker != worker or holder.tag in self._delivered:
                    continue
                if holder.tag in running:
                    still = True
                elif self.restore_held(holder.tag, worker, front=True, client=conn):
                    log.warning(
                        "message %s%s, held by this worker on a closed connection, went back "
                        "to its queue",
                        holder.tag,
                        f" for request {holder.member}" if holder.member else "",
                    )
        return still

    def sweep(self, gone: frozenset[str], registry: Liveness, lost_after: float) -> int:
        """Put back, at the front of their queues, the messages held by the ``gone``
        workers, then move those workers to the gone ones; how many went back."""
        if not gone:
            return 0
        restored = 0
        with self.channel.conn_or_acquire() as conn:
            held = conn.hgetall(registry.keys.holders)
            for tag, value in held.items():
                holder = Holder.parse(tag, value)
                if holder.worker not in gone:
                    continue
                if self.restore_held(holder.tag, holder.worker, front=True, client=conn):
                    restored += 1
                    log.warning(
                        "worker %s is gone (no heartbeat for %gs): its message %s%s went "
                        "back to its queue",
                        holder.worker,
                        lost_after,
                        holder.tag,
                        f" for request {holder.member}" if holder.member else "",
                    )
        for worker in gone:
            registry.bury(worker, lost_after)
        return restored


def _running_tags() -> set[str]:
    """The delivery tags of the tasks this worker runs now (Celery's active requests)."""
    tags = set()
    for request in list(state.active_requests):
        message = getattr(request, "message", None)
        if message is not None:
            tags.add(str(message.delivery_tag))
    return tags


class Channel(OneClient, SafeClose, kombu_redis.Channel):  # type: ignore[misc]  # kombu is untyped
    """Kombu's Redis channel whose ``close`` completes even when Redis is gone, whose QoS
    records who holds each delivery, and which reuses one Redis client."""

    QoS = HeldQoS


class SentinelChannel(OneClient, SafeClose, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """Kombu's Sentinel channel whose ``close`` completes even when the master is gone, whose
    QoS records who holds each delivery, and which reuses one Redis client."""

    QoS = HeldQoS


CREDIT_RECHECK_SECONDS = 0.05
"""How often a consumer with every prefetch slot taken looks again for a free one, when no
event loop tells it (a green pool)."""


class CreditPoller(kombu_redis.MultiChannelPoller):  # type: ignore[misc]
    """Kombu's poller, which, with every prefetch slot taken, sends no ``BRPOP`` (or pauses
    the one in flight) and looks at its credit again only when its poll ends: after the
    whole ``drain_events`` timeout (2 s, waiting on the remote-control socket) or a second
    (nothing to poll). Under prefork
    the event loop resumes the ``BRPOP`` as a slot frees; under gevent (no event loop) a
    worker with free slots and messages waiting spent that time idle: a gevent worker of
    concurrency 2 took a message every 2 s (fault 20). While paused it polls for
    :data:`CREDIT_RECHECK_SECONDS` at a time instead (a wake-up, nothing sent to Redis)."""

    _restored_at = 0.0

    def get(self, callback: Any, timeout: float | None = None) -> Any:
        """One poll; a short one while paused for credit."""
        if self._paused_brpop or self._waiting_for_credit():
            short = CREDIT_RECHECK_SECONDS
            timeout = short if timeout is None else min(timeout, short)
        return super().get(callback, timeout)

    def _waiting_for_credit(self) -> bool:
        """A consuming channel has every prefetch slot taken (so no ``BRPOP`` was sent)."""
        return any(c.active_queues and not c.qos.can_consume() for c in self._channels)

    def maybe_restore_messages(self) -> Any:
        """The sweep (:meth:`HeldQoS.restore_visible`), at most once per restore interval
        (kombu runs it after every empty poll, now every short one too)."""
        every = min((c.unacked_restore_interval for c in self._channels), default=5.0)
        now = monotonic()
        if now - self._restored_at < every / 2:
            return None
        self._restored_at = now
        return super().maybe_restore_messages()


class CreditCycle:
    """A Redis transport whose channels share a :class:`CreditPoller` (a mixin before one of
    kombu's Redis transports)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = CreditPoller()


class Transport(CreditCycle, kombu_redis.Transport):  # type: ignore[misc]  # kombu is untyped
    """Kombu's Redis transport with :class:`Channel` and :class:`CreditPoller`."""

    Channel = Channel


class SentinelTransport(CreditCycle, kombu_redis.SentinelTransport):  # type: ignore[misc]
    """Kombu's Redis Sentinel transport with :class:`SentinelChannel` and
    :class:`CreditPoller`."""

    Channel = SentinelChannel


def install() -> None:
    """Resolve ``redis``/``rediss`` to :class:`Transport` and ``sentinel`` to
    :class:`SentinelTransport` in this process."""
    for scheme, transport in SCHEMES.items():
        TRANSPORT_ALIASES[scheme] = transport
        _transport_cache.pop(scheme, None)
