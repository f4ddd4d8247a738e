"""The ``python -m sandbox`` command line: options, environment variables, one-line errors.

Every option is generated from a :class:`~sandbox.config.SandboxConfig` field. A value given
on the command line wins over ``SANDBOX_<NAME>`` in the environment, which wins over the
default. A bad value ends the process with one line on stderr and exit code 2.
"""

import argparse
import os
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, NoReturn

from sandbox.config import ConfigError, SandboxConfig, env_name, option_name

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not the usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _base_type(annotation: Any) -> type:
    """``int`` for ``int``, ``str`` for ``str | None`` and so on."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    if not isinstance(base, type):  # pragma: no cover - every field is a plain type
        raise TypeError(f"unsupported setting type {annotation!r}")
    return base


def _convert(kind: type, raw: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"expected a boolean (true/false), got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    return raw


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m sandbox`` (defaults come from the environment later)."""
    parser = _Parser(
        prog="sandbox",
        description="A local Pax8 Vendor Provisioning API for tests, demos and benchmarks.",
        argument_default=argparse.SUPPRESS,
    )
    hints = typing.get_type_hints(SandboxConfig)
    for f in fields(SandboxConfig):
        kind = _base_type(hints[f.name])
        help_text = f"{f.metadata.get('help', '')} [env {env_name(f.name)}; default {f.default}]"
        if kind is bool:
            parser.add_argument(
                option_name(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            parser.add_argument(
                option_name(f.name),
                dest=f.name,
                metavar=f.name.upper(),
                type=_converter(kind),
                help=help_text,
            )
    return parser


def _converter(kind: type) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return _convert(kind, raw)
        except ValueError as exc:
            # argparse turns ArgumentTypeError into "argument --x: <message>".
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def values_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``SANDBOX_*`` environment variables, converted to their types."""
    hints = typing.get_type_hints(SandboxConfig)
    values: dict[str, Any] = {}
    for f in fields(SandboxConfig):
        raw = environ.get(env_name(f.name))
        if raw is None:
            continue
        try:
            values[f.name] = _convert(_base_type(hints[f.name]), raw)
        except ValueError as exc:
            raise ConfigError(f"{env_name(f.name)}: {exc}") from None
    return values


def parse_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> SandboxConfig:
    """Build the settings from ``argv`` and ``environ``; exit 2 with one line when invalid."""
    parser = build_parser()
    given = vars(parser.parse_args(sys.argv[1:] if argv is None else list(argv)))
    try:
        values = values_from_env(os.environ if environ is None else environ)
        values.update(given)
        return SandboxConfig(**values)
    except ConfigError as exc:
        parser.error(str(exc))
