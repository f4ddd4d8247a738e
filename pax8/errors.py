"""The Pax8 client's exceptions, mapped from httpx in exactly one place.

::

    Pax8Error
    ├── TransientError ............ worth retrying later
    │   ├── TransportError ........ no HTTP answer (connection refused, reset, DNS)
    │   │   └── Timeout ........... the call ran out of time (the server may have acted)
    │   ├── RateLimited ........... 429, with the server's Retry-After in seconds
    │   │   └── HeldOff ........... not sent: this process holds off after a 429
    │   └── ServerError ........... 5xx
    └── PermanentError ............ retrying the same call cannot help
        ├── ClientError ........... 4xx with Pax8's error body
        │   ├── AuthenticationError  401 even after a fresh token, or the token call refused
        │   ├── NotFound .......... 404
        │   └── Conflict .......... 409 (e.g. the attempt already has a result)
        └── CredentialsMissing .... no credential set configured for the environment asked

Every exception passes its whole state to ``Exception.__init__`` and rebuilds itself
from it, so it survives pickling when it crosses a Celery process boundary.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "AuthenticationError",
    "ClientError",
    "Conflict",
    "CredentialsMissing",
    "NotFound",
    "Pax8Error",
    "PermanentError",
    "HeldOff",
    "RateLimited",
    "ServerError",
    "Timeout",
    "TransientError",
    "TransportError",
    "error_from_response",
    "error_from_transport",
    "parse_retry_after",
]


class Pax8Error(Exception):
    """Base of every error raised by the Pax8 client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransientError(Pax8Error):
    """A failure that may pass: retry later, with backoff."""

    retry_after: float | None = None


class TransportError(TransientError):
    """The request got no HTTP answer."""


class Timeout(TransportError):
    """The request timed out; the server may or may not have acted on it."""


class RateLimited(TransientError):
    """Pax8 answered 429; ``retry_after`` is its Retry-After in seconds, if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.retry_after))


class HeldOff(RateLimited):
    """Not sent: Pax8 answered 429 to this client shortly before, and every call of the
    process holds off until its Retry-After has passed; ``retry_after`` is the time left."""


class ServerError(TransientError):
    """Pax8 answered 5xx."""

    def __init__(self, message: str, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.status_code, self.retry_after))


class PermanentError(Pax8Error):
    """A failure that the same call will hit again."""


class ClientError(PermanentError):
    """Pax8 answered 4xx; ``body`` is its parsed error body (or text)."""

    def __init__(self, message: str, status_code: int, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.status_code, self.body))


class AuthenticationError(ClientError):
    """The credentials were refused, or a fresh token was refused again."""


class NotFound(ClientError):
    """The resource does not exist (or is invisible to these credentials)."""


class Conflict(ClientError):
    """The call conflicts with the resource's state."""


class CredentialsMissing(PermanentError):
    """No OAuth2 client is configured for the environment the call needs."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form); None when absent or a date."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> tuple[str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:1000]
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key], body
    return (str(body)[:300] if body else response.reason_phrase), body


def error_from_response(response: httpx.Response) -> Pax8Error:
    """Map a non-2xx answer to the matching exception."""
    status = response.status_code
    text, body = _error_text(response)
    where = f"{response.request.method} {response.request.url.path}"
    message = f"Pax8 answered {status} to {where}: {text}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return RateLimited(message, retry_after)
    if status >= 500:
        return ServerError(message, status, retry_after)
    if status == 401 or status == 403:
        return AuthenticationError(message, status, body)
    if status == 404:
        return NotFound(message, status, body)
    if status == 409:
        return Conflict(message, status, body)
    return ClientError(message, status, body)


def error_from_transport(exc: httpx.TransportError, what: str) -> TransportError:
    """Map an httpx transport failure of ``what`` (e.g. ``GET /provisioners``)."""
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"Pax8 timed out on {what}: {type(exc).__name__}")
    return TransportError(f"Pax8 unreachable on {what}: {type(exc).__name__}: {exc}")
