"""``fulfill console-user``: it prints the entry CONSOLE_USERS takes, never the password."""

from __future__ import annotations

from click.testing import CliRunner
from werkzeug.security import check_password_hash

from cli.console_user import console_user
from config.settings import explicit_settings

PASSWORD = "Console-Password-7f3a9"


def test_the_entry_has_a_hash_of_the_password_and_never_the_password() -> None:
    result = CliRunner().invoke(console_user, ["alice", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    name, _, hashed = result.output.strip().partition(":")
    assert name == "alice" and check_password_hash(hashed, PASSWORD)
    # What it printed is a valid CONSOLE_USERS value.
    users = explicit_settings(console_users=result.output.strip()).console_users
    assert [user.name for user in users] == ["alice"]


def test_a_short_password_is_refused_without_echoing_it() -> None:
    result = CliRunner().invoke(console_user, ["alice", "--password-stdin"], input="Tiny-pw9\n")
    assert result.exit_code != 0
    assert "Tiny-pw9" not in result.output
