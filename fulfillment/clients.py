"""Build the shared clients (Redis, Pax8) from settings: one place, one way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from config.settings import Settings

if TYPE_CHECKING:
    from pax8.client import Pax8Client


def redis_client(settings: Settings, socket_timeout: float | None = None) -> redis.Redis:
    """A Redis client (connection pool) for the ledger and locks."""
    timeout = socket_timeout or settings.redis_socket_timeout_seconds
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
