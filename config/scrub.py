"""Keep credentials out of everything this service writes down: Sentry events, breadcrumbs,
log lines and the URLs the CLI prints.

Scrubbing is by **value**: every secret the settings hold (each ``SecretStr`` field, every
webhook credential, the routes file's backend tokens, the password in ``REDIS_URL``) is
replaced wherever it appears, in any case, under any key; a header-name list alone misses the
credential a vendor chose the name of. On top of that, values under a sensitive key (the
configured webhook headers, ``Authorization``, cookies, ``client_secret``, ``password``,
``token``…) are dropped, and ``Bearer <anything>`` loses its token, which covers the OAuth
access tokens the process fetched at run time and that no setting knows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

from config.settings import Settings

FILTERED = "[Filtered]"
_MIN_SECRET = 4  # shorter "secrets" would blank out ordinary words
_SENSITIVE_KEYS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api_key",
    "apikey",
    "client_secret",
    "clientsecret",
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "credential",
    "shared_secret",
    "sharedsecret",
    "dsn",
}
_FORMATTER = logging.Formatter()
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")


def secret_values(settings: Settings) -> list[str]:
    """Every credential ``settings`` hold, as plain strings (the longest first)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        items = value if isinstance(value, list) else [value]
        found += [item.get_secret_value() for item in items if isinstance(item, SecretStr)]
    found += settings.routes.secrets()  # the routes file's tokens, read from the environment
    password = urlsplit(settings.redis_url).password
    if password:
        # As written in the URL and as sent to Redis (a percent-encoded character decoded).
        found += [password, unquote(password)]
    return sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True)


def sensitive_keys(settings: Settings) -> set[str]:
    """Keys whose values are dropped whatever they hold (header names included)."""
    return _SENSITIVE_KEYS | {
        settings.pax8_webhook_header.lower(),
        settings.cloudblue_webhook_header.lower(),
    }


def mask(secret: str) -> str:
    """All but the last four characters hidden (already masked text is left alone); what the
    CLI and the console show of a credential."""
    if secret.startswith("*"):
        return secret
    return "********" + secret[-4:] if len(secret) > 8 else "********"


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced, for printing."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))


class Scrubber:
    """Removes a process's secrets from text and from nested event data."""

    def __init__(self, secrets: Iterable[str], keys: Iterable[str] = _SENSITIVE_KEYS) -> None:
        values = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._values = (
            re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE) if values else None
        )
        # The fast path of text(): for ASCII secrets, "the lower-cased text contains a
        # lower-cased secret" is exactly when the case-insensitive pattern matches, and a
        # substring search costs a fraction of the pattern's scan (None: always scan).
        ascii_only = all(value.isascii() for value in values)
        self._lowered = tuple(value.lower() for value in values) if ascii_only else None
        self._keys = {key.lower() for key in keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        """The scrubber of everything ``settings`` hold."""
        return cls(secret_values(settings), sensitive_keys(settings))

    def text(self, value: str) -> str:
        """``value`` with every secret, bearer token and URL password replaced.

        Most lines hold none of them: for ASCII text each pattern runs only where a cheap
        test (a substring of the lower-cased text) says it could match; other text is
        scanned by every pattern.
        """
        if not value.isascii() or self._lowered is None:
            return self._scan(value, secrets=True, bearer=True, url=True)
        lowered = value.lower()
        secrets = any(secret in lowered for secret in self._lowered)
        bearer = "bearer" in lowered or "basic" in lowered
        url = "://" in value and "@" in value
        if secrets or bearer or url:
            return self._scan(value, secrets=secrets, bearer=bearer, url=url)
        return value

    def _scan(self, value: str, *, secrets: bool, bearer: bool, url: bool) -> str:
        if secrets and self._values is not None:
            value = self._values.sub(FILTERED, value)
        if bearer:
            value = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", value)
        if url:
            value = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{FILTERED}@", value)
        return value

    def data(self, value: Any, depth: int = 0) -> Any:
        """``value`` (dicts, lists, tuples, strings) scrubbed all the way down."""
        if depth > 64:
            return FILTERED  # deeper than any event Sentry builds: drop rather than recurse
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: FILTERED
                if isinstance(key, str) and self._sensitive(key)
                else self.data(item, depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            # Sentry sends headers as [name, value] pairs too.
            if len(value) == 2 and isinstance(value[0], str) and self._sensitive(value[0]):
                return [value[0], FILTERED]
            return [self.data(item, depth + 1) for item in value]
        return value

    def _sensitive(self, key: str) -> bool:
        name = key.lower()
        return name in self._keys or name.replace("-", "_") in self._keys

    # -- Sentry hooks ----------------------------------------------------------------------

    def before_send(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        """Sentry's ``before_send``: the event without a credential."""
        scrubbed: dict[str, Any] = self.data(event)
        return scrubbed

    def before_breadcrumb(self, crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        """Sentry's ``before_breadcrumb``: the breadcrumb without a credential."""
        scrubbed: dict[str, Any] = self.data(crumb)
        return scrubbed


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs the formatted message (and any exception text) of every
    record, at every level: defence in depth behind never logging a secret at all."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # Kept formatted (and scrubbed): the formatter's getMessage() need not format again.
        record.msg, record.args = self.scrubber.text(message), None
        if record.exc_info and not record.exc_text:
            # Formatted here, scrubbed, and cached where every formatter looks first.
            record.exc_text = self.scrubber.text(_FORMATTER.formatException(record.exc_info))
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = self.scrubber.data(fields)
        return True
