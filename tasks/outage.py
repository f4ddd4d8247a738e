"""Redis (broker and ledger) outages inside a task: hand the message back, never drop it.

With late acknowledgement a task that raises is acknowledged, i.e. its message is
gone. When the failure is Redis itself (restarting, unreachable, loading its AOF) the
order's work is not done, so the message is rejected with requeue instead: put back
at once if Redis answers again, otherwise left unacknowledged, and redelivered after
the visibility timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)

OUTAGE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OperationalError,
)


@contextmanager
def requeue_on_outage(what: Callable[[], str]) -> Iterator[None]:
    """Turn a Redis outage inside the block into ``Reject(requeue=True)``."""
    try:
        yield
    except OUTAGE as exc:
        log.warning("%s: Redis unavailable (%s); message handed back", what(), exc)
        raise Reject(exc, requeue=True) from exc
