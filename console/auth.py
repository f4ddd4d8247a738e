"""Who may use the console: HTTP basic auth against ``CONSOLE_USERS`` (werkzeug password
hashes), and, when no users are configured (loopback only), a check of the ``Host`` header.

Without users, anything that can reach 127.0.0.1 is trusted; the ``Host`` check keeps a web
page that rebinds its own name to 127.0.0.1 (DNS rebinding) from reading the console through
the operator's browser. With users, every request needs a valid name and password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from werkzeug.security import check_password_hash, generate_password_hash

from config.settings import ConsoleUser

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
REALM = "fulfillment console"
CACHE_SECONDS = 300.0
"""A verified name and password is remembered this long (a password hash costs ~50 ms)."""


def host_is_loopback(host: str) -> bool:
    """Whether a ``Host`` header names this machine (with or without a port)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name.split("]", 1)[0] + "]"
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name in LOOPBACK_NAMES


class Users:
    """Checks basic-auth credentials against the configured users."""

    def __init__(self, users: list[ConsoleUser]) -> None:
        self._hashes = {user.name: user.password_hash.get_secret_value() for user in users}
        # An unknown name is checked against this, so it costs what a known one does.
        self._decoy = generate_password_hash(secrets.token_urlsafe(16)) if users else ""
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        """Whether any user is configured (then every request must authenticate)."""
        return bool(self._hashes)

    def check(self, name: str | None, password: str | None) -> bool:
        """Whether ``name`` and ``password`` are a configured user's."""
        if not name or password is None:
            return False
        digest = hmac.new(self._key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            if self._verified.get(digest, 0.0) > now:
                return True
        stored = self._hashes.get(name)
        ok = check_password_hash(stored or self._decoy, password) and stored is not None
        if ok:
            with self._lock:
                if len(self._verified) > 256:
                    self._verified.clear()
                self._verified[digest] = now + CACHE_SECONDS
        return ok
