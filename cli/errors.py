"""Exit codes of ``fulfill`` and the one place that maps library errors onto them.

::

    0  ok
    1  the command could not do what was asked (unknown request, refused replay, orders
       not fulfilled in time, reconciliation errors)
    2  usage or configuration error (a bad or missing setting, a bad option, a port taken)
    3  a dependency is unreachable (Redis or Pax8; the message names the setting and URL)
    4  the ledger's data is of a schema this release cannot use as it is (a newer one, or an
       older one that needs ``fulfill migrate``: docs/upgrading.md)

Commands raise :class:`CommandFailed` (1), :class:`ConfigurationError` (2) or
:class:`Unreachable` (3) themselves; anything else that escapes a command goes through
:func:`translate`, so a Redis outage is exit 3 whichever command met it.
"""

from __future__ import annotations

from typing import IO, Any

import click

from config.logging import escape_controls
from config.scrub import Scrubber
from config.settings import ConfigError, Settings
from fulfillment.ledger.migrations import LockLost
from fulfillment.ledger.schema import EXIT_CODE as SCHEMA_EXIT_CODE
from fulfillment.ledger.schema import SchemaError
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, redis_location
from pax8.errors import AuthenticationError, CredentialsMissing, Pax8Error, TransientError
from sandbox.config import ConfigError as SandboxConfigError

OK = 0
FAILED = 1
USAGE = 2
UNREACHABLE = 3
INCOMPATIBLE = SCHEMA_EXIT_CODE

EXIT_CODES_HELP = """\b
Exit codes:
  0  ok
  1  the command could not do what was asked (unknown request, refused replay,
     orders not fulfilled in time, reconciliation errors)
  2  usage or configuration error (a bad or missing setting: the message names it)
  3  a dependency is unreachable (Redis or Pax8: the message names the URL)
  4  the ledger's data is of a newer schema, or needs fulfill migrate
"""


class CommandFailed(click.ClickException):
    """The command ran but could not do what was asked (exit 1)."""

    exit_code = FAILED
    prefix = "fulfill: error: "

    def show(self, file: IO[Any] | None = None) -> None:
        """One line on stderr."""
        click.echo(f"{self.prefix}{escape_controls(self.format_message())}", err=True)


class ConfigurationError(CommandFailed):
    """A setting or option is missing or malformed (exit 2)."""

    exit_code = USAGE
    prefix = "fulfillment: configuration error: "


class Unreachable(CommandFailed):
    """Redis or Pax8 did not answer (exit 3)."""

    exit_code = UNREACHABLE
    prefix = "fulfill: unreachable: "


class IncompatibleData(CommandFailed):
    """The ledger's data is of a schema this release cannot use as it is (exit 4)."""

    exit_code = INCOMPATIBLE
    prefix = "fulfill: "


def redis_unreachable(settings: Settings | None, exc: BaseException) -> Unreachable:
    """The exit-3 error for a Redis that does not answer (its URL's password masked; with
    REDIS_SENTINELS, the master's name and the sentinels)."""
    where = redis_location(settings) if settings else "REDIS_URL=(unset)"
    return Unreachable(f"Redis at {where} does not answer: {exc}")


def translate(exc: BaseException, settings: Settings | None) -> click.ClickException | None:
    """The exit-coded error for ``exc`` (no credential in its text), or None if it is not one
    the CLI knows."""
    mapped = _translate(exc, settings)
    if mapped is not None and settings is not None:
        # click 8.5 declares ``message`` Final; it is replaced once, before anyone reads it.
        mapped.message = Scrubber.from_settings(settings).text(mapped.message)  # type: ignore[misc,unused-ignore]
    return mapped


def _translate(exc: BaseException, settings: Settings | None) -> click.ClickException | None:
    if isinstance(exc, ConfigError):
        return ConfigurationError(str(exc))
    if isinstance(exc, SandboxConfigError):
        return ConfigurationError(str(exc))
    if isinstance(exc, SchemaError):
        return IncompatibleData(str(exc))
    if isinstance(exc, LockLost):
        return CommandFailed(str(exc))
    if isinstance(exc, REDIS_UNAVAILABLE):  # also kombu's, when a publish is refused
        return redis_unreachable(settings, exc)
    if isinstance(exc, Pax8Error):
        return _pax8(exc, settings)
    return None


def _pax8(exc: Pax8Error, settings: Settings | None) -> click.ClickException:
    if isinstance(exc, CredentialsMissing):
        variable = "PAX8_SIMULATION_CLIENT_ID" if "simulation" in exc.message else "PAX8_CLIENT_ID"
        return ConfigurationError(f"{variable}: {exc.message}")
    if isinstance(exc, AuthenticationError):
        variable = "PAX8_CLIENT_ID"
        sim_id = settings.pax8_simulation_client_id if settings else None
        if sim_id and repr(sim_id) in exc.message:
            variable = "PAX8_SIMULATION_CLIENT_ID"
        return ConfigurationError(f"{variable}: {exc.message}")
    if isinstance(exc, TransientError):
        variable, url = "PAX8_API_URL", settings.pax8_api_url if settings else "(unset)"
        if settings is not None and settings.pax8_token_url in exc.message:
            variable, url = "PAX8_TOKEN_URL", settings.pax8_token_url
        return Unreachable(f"Pax8 at {variable}={url} does not answer: {exc.message}")
    return CommandFailed(exc.message)
