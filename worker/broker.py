"""The Redis broker transport the worker uses: kombu's, with its close made safe.

Kombu's Redis ``Channel.close`` first reads the reply of a ``BRPOP`` it left outstanding.
When Redis went away, that read raises a connection error and ``close`` returns before it
has closed anything. Celery then closes the connection a second time, after detaching the
transport, and the channel's close (now restoring its unacknowledged messages) needs the
detached transport's URL: ``AttributeError: 'NoneType' object has no attribute
'hostname'``, which Celery treats as unrecoverable. The worker exits on a Redis restart
whenever it held a task and waited for another (fault 07b).

This channel finishes closing on the first call instead, while the transport is attached.
:func:`install` makes the ``redis://`` and ``rediss://`` schemes use it, and ``sentinel://``
(``REDIS_SENTINELS``) kombu's Sentinel transport with the same close, whose connections ask
the sentinels for the master (a master killed or demoted in a failover is the same lost
connection), so URLs, logs and Flower's broker view stay as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, _transport_cache, virtual
from kombu.transport import redis as kombu_redis

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
        # AttributeError. Nothing is lost: the messages are still in Redis's unacked set.
        log.warning(
            "broker unreachable while closing a channel (%r); any message it held "
            "unacknowledged comes back after the visibility timeout",
            error,
        )


class Channel(SafeClose, kombu_redis.Channel):  # type: ignore[misc]  # kombu is untyped
    """Kombu's Redis channel whose ``close`` completes even when Redis is gone."""


class SentinelChannel(SafeClose, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """Kombu's Sentinel channel whose ``close`` completes even when the master is gone."""


class Transport(kombu_redis.Transport):  # type: ignore[misc]  # kombu is untyped
    """Kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):  # type: ignore[misc]
    """Kombu's Redis Sentinel transport with :class:`SentinelChannel`."""

    Channel = SentinelChannel


def install() -> None:
    """Resolve ``redis``/``rediss`` to :class:`Transport` and ``sentinel`` to
    :class:`SentinelTransport` in this process."""
    for scheme, transport in SCHEMES.items():
        TRANSPORT_ALIASES[scheme] = transport
        _transport_cache.pop(scheme, None)
