"""OAuth2 client-credentials tokens, as Pax8's ``/v1/token`` issues them.

A token is a random opaque string bound to one environment (the client id that asked for it
decides which) and to one audience: ``api://provisioning`` for the provisioning API,
``api://usage`` for the Usage API; a token of one audience is refused (401) by the other
API, as Pax8's ``authentication`` page has vendors ask for a token per audience. It is
valid for ``token_ttl`` seconds. Tokens live in memory; ``expire_all``
invalidates every one at once so tests can watch a client renew.
"""

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.config import SandboxConfig
from sandbox.errors import ApiError

AUDIENCE = "api://provisioning"
USAGE_AUDIENCE = "api://usage"
AUDIENCES = {AUDIENCE: "provisioning", USAGE_AUDIENCE: "usage"}
"""Each audience a token may be asked for, and the suffix of its scope."""
SCOPES = {"production": "vendor:provisioning", "simulation": "vendorSimulation:provisioning"}
_SCOPE_PREFIX = {"production": "vendor", "simulation": "vendorSimulation"}


@dataclass(frozen=True)
class Token:
    """One issued access token."""

    value: str
    environment: str
    expires_at: float
    audience: str = AUDIENCE

    def answer(self, ttl: int) -> dict[str, object]:
        """The token endpoint's JSON answer for this token."""
        return {
            "access_token": self.value,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": f"{_SCOPE_PREFIX[self.environment]}:{AUDIENCES[self.audience]}",
        }


class TokenRegistry:
    """Issues, checks and revokes tokens; thread-safe."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}

    def authenticate(self, client_id: str, client_secret: str, audience: str) -> Token:
        """A new token for valid credentials; a 401 for anything else."""
        for env in SCOPES:
            known_id, known_secret = self._config.credentials(env)
            if _same(client_id, known_id):
                if not _same(client_secret, known_secret):
                    break
                if audience not in AUDIENCES:
                    raise _denied(f"audience must be {AUDIENCE} or {USAGE_AUDIENCE}")
                return self.issue(env, audience)
        raise _denied("unknown client or wrong secret")

    def issue(self, environment: str, audience: str = AUDIENCE) -> Token:
        """A fresh token for ``environment`` and ``audience``."""
        now = self._clock()
        token = Token(
            secrets.token_urlsafe(32), environment, now + self._config.token_ttl, audience
        )
        with self._lock:
            # Sweep the expired ones now and then so a long benchmark does not grow the table.
            if len(self._tokens) > 1000:
                self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            self._tokens[token.value] = token
        return token

    def environment(self, authorization: str | None, audience: str | None = None) -> str | None:
        """The environment of a valid ``Authorization: Bearer`` header (of ``audience``,
        when given), else None."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None
        with self._lock:
            token = self._tokens.get(value.strip())
        if token is None or token.expires_at <= self._clock():
            return None
        if audience is not None and token.audience != audience:
            return None
        return token.environment

    def require(self, authorization: str | None, audience: str = AUDIENCE) -> str:
        """The environment of a valid bearer token of ``audience``; a 401 otherwise."""
        env = self.environment(authorization, audience)
        if env is None:
            raise ApiError(
                401,
                f"missing, unknown or expired bearer token (this API takes tokens of the "
                f"audience {audience})",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return env

    def expire_all(self) -> int:
        """Invalidate every token issued so far; return how many there were."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
        return count


def _denied(reason: str) -> ApiError:
    return ApiError(401, f"access denied: {reason}", {"error": "access_denied"})


def _same(given: str, known: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, which would make an odd client id a 500.
    return secrets.compare_digest(given.encode(), known.encode())
