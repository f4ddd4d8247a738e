"""Who may use the console: HTTP basic auth against ``CONSOLE_USERS`` (werkzeug password
hashes), and, only when anonymous loopback is asked for by name (``CONSOLE_ANONYMOUS``, what
``fulfill dev`` sets), a check of the ``Host`` header instead.

Without users, anything that can reach 127.0.0.1 is trusted; the ``Host`` check keeps a web
page that rebinds its own name to 127.0.0.1 (DNS rebinding) from reading the console through
the operator's browser. It cannot tell a reverse proxy on the same host that forwards
``Host: 127.0.0.1:8090`` from a local browser: hence users unless asked otherwise by name.
With users, every request needs a valid name and password; failed sign-ins are logged (the
name only if it could be a user's, never the password) and throttled per name and per client
(:class:`Throttle`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from werkzeug.security import check_password_hash, generate_password_hash

from config.logging import escape_controls
from config.settings import USER_NAME, ConsoleUser

log = logging.getLogger("console")

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

    def recent(self, name: str | None, password: str | None, client: str = "") -> bool:
        """Whether ``name`` and ``password`` were verified from ``client`` within
        :data:`CACHE_SECONDS` (no hash computed: an operator signed in from there goes on
        while a guesser elsewhere has their name locked; a guesser gains nothing from it)."""
        if not name or password is None:
            return False
        with self._lock:
            return self._verified.get(self._digest(name, password, client), 0.0) > time.monotonic()

    def _digest(self, name: str, password: str, client: str) -> bytes:
        text = f"{client}\0{name}\0{password}".encode()
        return hmac.new(self._key, text, hashlib.sha256).digest()

    def check(self, name: str | None, password: str | None, client: str = "") -> bool:
        """Whether ``name`` and ``password`` are a configured user's."""
        if not name or password is None:
            return False
        if self.recent(name, password, client):
            return True
        digest = self._digest(name, password, client)
        now = time.monotonic()
        stored = self._hashes.get(name)
        ok = check_password_hash(stored or self._decoy, password) and stored is not None
        if ok:
            with self._lock:
                if len(self._verified) > 256:
                    self._verified.clear()
                self._verified[digest] = now + CACHE_SECONDS
        return ok


FAILURES_PER_USER = 5
"""Failed sign-ins for one user name within :data:`WINDOW_SECONDS` before it is locked."""
FAILURES_PER_CLIENT = 10
"""Failed sign-ins from one client address within :data:`WINDOW_SECONDS` before it is locked."""
WINDOW_SECONDS = 900.0
TRACKED = 10_000
"""Names and addresses remembered at most (the oldest are forgotten first)."""


class Throttle:
    """Failed sign-ins counted per user name and per client address over a sliding window.

    Past :data:`FAILURES_PER_USER` for a name or :data:`FAILURES_PER_CLIENT` from a client,
    every sign-in for that name or from that client is refused without looking at the
    password (no oracle, no hash computed) until the oldest failure leaves the window. A
    locked name can lock its owner out too: the price of not letting a guesser spread over
    many addresses; a success clears the name's count (not the client's).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, name: str, client: str) -> float:
        """Seconds before a sign-in for ``name`` from ``client`` is looked at again (0: now)."""
        with self._lock:
            return max(
                self._locked(f"user:{name}", FAILURES_PER_USER),
                self._locked(f"client:{client}", FAILURES_PER_CLIENT),
            )

    def failed(self, name: str, client: str) -> None:
        """Count one failed sign-in."""
        now = self._clock()
        with self._lock:
            for key in (f"user:{name}", f"client:{client}"):
                times = self._failures.pop(key, None) or deque(maxlen=FAILURES_PER_CLIENT)
                times.append(now)
                self._failures[key] = times
            while len(self._failures) > TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        """The name's owner signed in: its count starts again."""
        with self._lock:
            self._failures.pop(f"user:{name}", None)

    def _locked(self, key: str, limit: int) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        cutoff = self._clock() - WINDOW_SECONDS
        recent = [t for t in times if t > cutoff]
        if len(recent) < limit:
            return 0.0
        return recent[-limit] + WINDOW_SECONDS - self._clock()


def shown_name(name: str | None) -> str:
    """A user name fit for a log line: as typed if it could be a user's name (escaped), else
    only that it was not one (it may be a password typed in the wrong field)."""
    if not name:
        return "(no name)"
    if USER_NAME.fullmatch(name):
        return escape_controls(name)
    return f"(not a user name, {len(name)} characters)"


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))
