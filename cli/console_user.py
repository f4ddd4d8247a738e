"""``fulfill console-user NAME``: print a ``CONSOLE_USERS`` entry (the password hashed)."""

from __future__ import annotations

import sys

import click
from werkzeug.security import generate_password_hash

from cli.errors import ConfigurationError
from config.settings import USER_NAME

MIN_PASSWORD = 12


@click.command("console-user", short_help="Print a CONSOLE_USERS entry for a console user.")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)
def console_user(name: str, password_stdin: bool) -> None:
    """Ask for NAME's password (twice) and print NAME:HASH for CONSOLE_USERS.

    The hash is werkzeug's scrypt; the password itself is never printed or stored. Join
    several entries with commas: CONSOLE_USERS=alice:...,bob:...

    \b
    Examples:
      fulfill console-user alice
      printf '%s\\n' "$PASSWORD" | fulfill console-user ci --password-stdin
    """
    if not USER_NAME.fullmatch(name):
        raise ConfigurationError(
            "NAME: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    if len(password) < MIN_PASSWORD:
        raise ConfigurationError(f"the password: at least {MIN_PASSWORD} characters, please")
    click.echo(f"{name}:{generate_password_hash(password)}")
