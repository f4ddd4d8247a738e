"""``fulfill sandbox``: run the local Pax8, its options generated from ``SandboxConfig``.

Every field of :class:`sandbox.config.SandboxConfig` becomes an option with the field's
name, default, help text and ``SANDBOX_*`` environment variable, so a setting added to
the sandbox appears here without a change (and ``python -m sandbox`` takes the same).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Any, TypeVar

import click

from cli.errors import ConfigurationError
from sandbox.config import ConfigError, SandboxConfig, env_name, option_name
from sandbox.server import serve

F = TypeVar("F", bound=Callable[..., Any])


def _base_type(annotation: Any) -> type:
    """``int`` for ``int``, ``str`` for ``str | None``."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    base = args[0] if args else annotation
    if not isinstance(base, type):
        raise TypeError(f"unsupported sandbox setting type {annotation!r}")
    return base


def _option(field: Field[Any], kind: type) -> Callable[[F], F]:
    default = None if field.default is MISSING else field.default
    common: dict[str, Any] = {
        "default": default,
        "envvar": env_name(field.name),
        "show_envvar": True,
        "show_default": default is not None,
        "help": field.metadata.get("help", ""),
    }
    flag = option_name(field.name)
    if kind is bool:
        negative = "--no-" + flag.removeprefix("--")
        return click.option(f"{flag}/{negative}", field.name, **common)
    return click.option(flag, field.name, type=kind, metavar=field.name.upper(), **common)


def sandbox_options(command: F) -> F:
    """Decorate ``command`` with one option per ``SandboxConfig`` field, in field order."""
    hints = typing.get_type_hints(SandboxConfig)
    for field in reversed(fields(SandboxConfig)):
        command = _option(field, _base_type(hints[field.name]))(command)
    return command


def build_config(values: dict[str, Any]) -> SandboxConfig:
    """The sandbox settings from the options; a bad one is exit 2 naming the option."""
    try:
        return SandboxConfig(**values)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None


@click.command("sandbox", short_help="Run the local Pax8 sandbox.")
@sandbox_options
def sandbox(**values: Any) -> None:
    """Run the local Pax8 sandbox (the provisioning API, simulation, fault injection).

    It serves Pax8's API under /v2 and the token endpoint at /v1/token; point
    PAX8_API_URL and PAX8_TOKEN_URL there. The control plane under /sandbox (config,
    orders, results, faults, ...) steers it. Runs until Ctrl-C or SIGTERM. Every option
    can also be set as its SANDBOX_* environment variable.

    \b
    Examples:
      fulfill sandbox
      fulfill sandbox --port 9090 --retry-delay 0.5
      fulfill sandbox --simulation-webhook-url http://127.0.0.1:8000/webhooks/pax8 \\
          --simulation-webhook-secret s3cret
    """
    config = build_config(values)
    try:
        serve(config)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
