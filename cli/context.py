"""The collaborators a command needs, built on first use from the settings, closed at exit.

A command asks for what it uses and nothing more: ``fulfill status`` never needs Pax8
credentials, ``fulfill webhooks list`` never needs Redis. Each client is checked as it is
built (Redis answers a PING, the Celery app loads), so an unreachable dependency is
reported once, up front, by :mod:`cli.errors` (exit 3) rather than halfway through. The
ledger is checked too before a command reads or writes an order: its schema, as every
process checks it at start (``fulfillment/ledger/migrations.py``: data of a newer schema is
exit 4, an older one migrated when that is safe).
"""

from __future__ import annotations

import click
import redis

from cli.errors import ConfigurationError, redis_unreachable
from config.settings import ConfigError, Settings, build_settings
from fulfillment.intake.publisher import Publisher
from fulfillment.ledger import Ledger
from fulfillment.ledger.migrations import migrate
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, RedisUse
from fulfillment.services import Services
from pax8.client import Pax8Client
from worker.services import build_services


class Runtime:
    """Settings and lazily built services of one ``fulfill`` invocation."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._services: Services | None = None
        self._checked = False
        self._schema_checked = False

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

    @property
    def services(self) -> Services:
        """The command's services (built from :attr:`settings`, Redis timed for the CLI)."""
        if self._services is None:
            self._services = build_services(self.settings, RedisUse.CLI)
        return self._services

    def redis(self) -> redis.Redis:
        """A Redis client that has answered a PING."""
        client = self.services.redis
        if not self._checked:
            try:
                client.ping()
            except REDIS_UNAVAILABLE as exc:
                raise redis_unreachable(self.settings, exc) from None
            self._checked = True
        return client

    def ledger(self, check_schema: bool = True) -> Ledger:
        """The ledger on :meth:`redis`, its schema checked (and migrated when that is safe;
        :class:`~fulfillment.ledger.schema.SchemaError`, exit 4, when this release cannot
        use it). ``check_schema=False``: ``fulfill migrate``, which does it itself."""
        self.redis()
        ledger = self.services.ledger
        if check_schema and not self._schema_checked:
            migrate(ledger, rewrite=self.settings.ledger_migrate_at_start)
            self._schema_checked = True
        return ledger

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
        return self.services.pax8

    def publisher(self) -> Publisher:
        """A publisher on a Celery app of these settings (tasks are sent by name)."""
        return self.services.publisher

    def close(self) -> None:
        """Release every client built."""
        if self._services is not None:
            self._services.close()


def runtime() -> Runtime:
    """The :class:`Runtime` of the current click invocation."""
    ctx = click.get_current_context()
    found = ctx.find_object(Runtime)
    if found is None:  # a command invoked on its own, outside ``fulfill``
        found = ctx.ensure_object(Runtime)
        ctx.call_on_close(found.close)
    return found
