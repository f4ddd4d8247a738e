"""OAuth2 client credentials for the provisioning API, one cached token per credential set.

Pax8 tokens live 24 h. A token is fetched on first use, shared by every thread of the
process, and refreshed when less than ``refresh_margin`` of its life is left, so a call
never leaves with a token about to expire. A 401 from the API invalidates the token it
was made with (and only that one, so concurrent callers do not refresh in a storm).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from pax8.errors import (
    AuthenticationError,
    ServerError,
    error_from_response,
    error_from_transport,
)

AUDIENCE = "api://provisioning"


@dataclass(frozen=True)
class Credentials:
    """One OAuth2 client (production or simulation)."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass
class _Token:
    value: str
    expires_at: float
    lifetime: float


class TokenCache:
    """Fetches, caches and refreshes the bearer token of one credential set."""

    def __init__(
        self,
        http: httpx.Client,
        token_url: str,
        credentials: Credentials,
        *,
        audience: str = AUDIENCE,
        refresh_margin: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._credentials = credentials
        self._audience = audience
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self.fetches = 0

    def token(self) -> str:
        """A valid bearer token, fetching a new one when the cached one is near its end."""
        with self._lock:
            current = self._token
            if current is None or self._expiring(current):
                current = self._token = self._fetch()
            return current.value

    def invalidate(self, value: str) -> None:
        """Forget ``value`` if it is still the cached token (the API refused it)."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _expiring(self, token: _Token) -> bool:
        # At least a second of margin, but never more than half the life: a token that
        # lives a second or less is still used, not fetched again before every call.
        margin = min(max(1.0, token.lifetime * self._refresh_margin), token.lifetime / 2)
        return self._clock() >= token.expires_at - margin

    def _fetch(self) -> _Token:
        body = {
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
            "audience": self._audience,
            "grant_type": "client_credentials",
        }
        try:
            response = self._http.post(self._token_url, json=body)
        except httpx.TransportError as exc:
            raise error_from_transport(exc, f"POST {self._token_url}") from exc
        if response.status_code in (400, 401, 403):
            error = error_from_response(response)
            raise AuthenticationError(
                f"Pax8 refused the credentials of client {self._credentials.client_id!r}: "
                f"{error.message}",
                response.status_code,
                getattr(error, "body", None),
            )
        if response.is_error:
            raise error_from_response(response)
        try:
            payload = response.json()
            value = str(payload["access_token"])
            lifetime = float(payload.get("expires_in") or 86400)
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(
                f"Pax8 token answer unreadable: {response.text[:200]!r}", response.status_code
            ) from exc
        self.fetches += 1
        return _Token(value=value, expires_at=self._clock() + lifetime, lifetime=lifetime)
