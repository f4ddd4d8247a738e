"""The Redis broker transport the worker uses: kombu's, with its close made safe.

Kombu's Redis ``Channel.close`` first reads the reply of a ``BRPOP`` it left outstanding.
When Redis went away, that read raises a connection error and ``close`` returns before it
has closed anything. Celery then closes the connection a second time, after detaching the
transport, and the channel's close (now restoring its unacknowledged messages) needs the
detached transport's URL: ``AttributeError: 'NoneType' object has no attribute
'hostname'``, which Celery treats as unrecoverable. The worker exits on a Redis restart
whenever it held a task and waited for another (fault 07b).

This channel finishes closing on the first call instead, while the transport is attached.
:func:`install` makes the ``redis://`` and ``rediss://`` schemes use it, so URLs, logs and
Flower's broker view stay as they are.
"""

from __future__ import annotations

import logging

from kombu.transport import TRANSPORT_ALIASES, _transport_cache, virtual
from kombu.transport import redis as kombu_redis

TRANSPORT = "worker.broker:Transport"

log = logging.getLogger(__name__)
SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):  # type: ignore[misc]  # kombu is untyped
    """Kombu's Redis channel whose ``close`` completes even when Redis is gone."""

    def close(self) -> None:
        """Close, and stay closed, whether or not Redis answers."""
        try:
            super().close()
        except self.connection_errors as exc:
            if not self.closed:
                self._finish_close(exc)
            else:
                self._lost(exc)

    def _finish_close(self, error: Exception) -> None:
        """The steps kombu's close skipped; none of them needs a live connection."""
        self._in_poll = None
        self.connection.cycle.discard(self)
        self._disconnect_pools()
        self._close_clients()
        try:
            # Marks the channel closed, then puts unacknowledged messages back.
            virtual.Channel.close(self)
        except self.connection_errors as exc:
            self._lost(exc)
        else:
            log.info("broker channel closed after a connection error: %r", error)

    def _lost(self, error: Exception) -> None:
        # Not raised: the channel is closed, and callers (Celery's bootsteps) that catch
        # connection errors on a connection they already let go of turn it into an
        # AttributeError. Nothing is lost: the messages are still in Redis's unacked set.
        log.warning(
            "broker unreachable while closing a channel (%r); any message it held "
            "unacknowledged comes back after the visibility timeout",
            error,
        )


class Transport(kombu_redis.Transport):  # type: ignore[misc]  # kombu is untyped
    """Kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


def install() -> None:
    """Resolve the ``redis``/``rediss`` schemes to :class:`Transport` in this process."""
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = TRANSPORT
        _transport_cache.pop(scheme, None)
