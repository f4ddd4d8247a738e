"""The collaborators a command needs, built on first use from the settings, closed at exit.

A command asks for what it uses and nothing more: ``fulfill status`` never needs Pax8
credentials, ``fulfill webhooks list`` never needs Redis. Each client is checked as it is
built (Redis answers a PING, the Celery app loads), so an unreachable dependency is
reported once, up front, by :mod:`cli.errors` (exit 3) rather than halfway through.
"""

from __future__ import annotations

import click
import redis

from cli.errors import ConfigurationError, redis_unreachable
from config.settings import ConfigError, Settings, build_settings
from fulfillment.clients import pax8_client, redis_client
from fulfillment.ledger import Ledger
from pax8.client import Pax8Client
from worker.publish import CeleryPublisher


class Runtime:
    """Settings and lazily built clients of one ``fulfill`` invocation."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._redis: redis.Redis | None = None
        self._ledger: Ledger | None = None
        self._pax8: Pax8Client | None = None
        self._publisher: CeleryPublisher | None = None

    @property
    def loaded(self) -> Settings | None:
        """The settings if they were built already (for error messages)."""
        return self._settings

    @property
    def settings(self) -> Settings:
        """The settings from the environment; :class:`ConfigError` (exit 2) if malformed."""
        if self._settings is None:
            self._settings = build_settings()
        return self._settings

    def redis(self) -> redis.Redis:
        """A Redis client that has answered a PING."""
        if self._redis is None:
            client = redis_client(self.settings, socket_timeout=5.0)
            try:
                client.ping()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                client.close()
                raise redis_unreachable(self.settings.redis_url, exc) from None
            self._redis = client
        return self._redis

    def ledger(self) -> Ledger:
        """The ledger on :meth:`redis`."""
        if self._ledger is None:
            self._ledger = Ledger(self.redis())
        return self._ledger

    def pax8(self, simulation: bool | None = None) -> Pax8Client:
        """The Pax8 client; with ``simulation`` given, that credential set must be configured."""
        settings = self.settings
        if simulation is not None and not settings.has_credentials(simulation):
            prefix = "PAX8_SIMULATION_" if simulation else "PAX8_"
            raise ConfigurationError(
                f"{prefix}CLIENT_ID: not set; {prefix}CLIENT_ID and {prefix}CLIENT_SECRET "
                f"are needed for {'simulation' if simulation else 'production'} calls"
            )
        if simulation is None:
            try:
                settings.require("pax8")
            except ConfigError as exc:
                raise ConfigurationError(str(exc)) from None
        if self._pax8 is None:
            self._pax8 = pax8_client(settings)
        return self._pax8

    def publisher(self) -> CeleryPublisher:
        """A publisher on the worker's own Celery app (tasks are sent by name)."""
        if self._publisher is None:
            _ = self.settings  # a malformed setting is exit 2 here, before worker.app loads
            from worker.app import app

            self._publisher = CeleryPublisher(app)
        return self._publisher

    def close(self) -> None:
        """Release every client built."""
        if self._pax8 is not None:
            self._pax8.close()
        if self._redis is not None:
            self._redis.close()


def runtime() -> Runtime:
    """The :class:`Runtime` of the current click invocation."""
    ctx = click.get_current_context()
    found = ctx.find_object(Runtime)
    if found is None:  # a command invoked on its own, outside ``fulfill``
        found = ctx.ensure_object(Runtime)
        ctx.call_on_close(found.close)
    return found
