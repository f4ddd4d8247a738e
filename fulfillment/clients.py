"""Build the shared clients (Redis, Pax8) from settings: one place, one way.

Each kind of Redis user gets one timeout policy (:class:`RedisUse`), and
:data:`REDIS_UNAVAILABLE` is the one list of errors that mean "Redis cannot take this now"
(a 503 for the receiver, a message handed back for a task, exit 3 for the CLI). Anything
else from Redis (a script error, a wrong type) is a bug.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import redis
from kombu.exceptions import OperationalError

from config.settings import Settings

if TYPE_CHECKING:
    from pax8.client import Pax8Client

REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # refused, reset, gone; also no master (Sentinel)
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,  # loading its AOF after a restart
    redis.exceptions.ReadOnlyError,  # a replica, e.g. right after a failover
    OperationalError,  # kombu's wrapper of the same, when publishing
)


class RedisUse(StrEnum):
    """Who uses a Redis client, and so how long one call may take."""

    RECEIVER = "receiver"  # answering a webhook: REDIS_SOCKET_TIMEOUT_SECONDS, then 503
    WORKER = "worker"  # a task: long enough for a busy Redis, short of the time limits
    CLI = "cli"  # an operator's command: a few seconds, then exit 3

    def socket_timeout(self, settings: Settings) -> float:
        """Seconds a call (and a connect) may take for this use."""
        if self is RedisUse.RECEIVER:
            return settings.redis_socket_timeout_seconds
        return 10.0 if self is RedisUse.WORKER else 5.0


def redis_client(settings: Settings, use: RedisUse) -> redis.Redis:
    """A Redis client (connection pool) for the ledger and locks, timed for ``use``."""
    timeout = use.socket_timeout(settings)
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def pax8_client(settings: Settings) -> Pax8Client:
    """A Pax8 client with whichever credential sets are configured."""
    # Imported here: the receiver builds no Pax8 client and need not load httpx.
    from pax8.auth import Credentials
    from pax8.client import Pax8Client

    production = simulation = None
    if settings.pax8_client_id and settings.pax8_client_secret:
        production = Credentials(
            settings.pax8_client_id, settings.pax8_client_secret.get_secret_value()
        )
    if settings.pax8_simulation_client_id and settings.pax8_simulation_client_secret:
        simulation = Credentials(
            settings.pax8_simulation_client_id,
            settings.pax8_simulation_client_secret.get_secret_value(),
        )
    return Pax8Client(
        settings.pax8_api_url,
        settings.pax8_token_url,
        production=production,
        simulation=simulation,
        timeout=settings.pax8_timeout_seconds,
        page_size=settings.reconcile_page_size,
    )
