"""Shared-secret checks for webhook credentials, in constant time.

Pax8 webhook configurations are immutable, so rotating a credential means accepting the
old and the new one for a while: every configured secret is compared, always all of
them, so the time taken does not reveal which (or how much of one) matched.

CloudBlue's product line has one field, the base URL, so its credential may come three
ways (:func:`cloudblue_credentials`): the configured header, ``Authorization: Bearer``, or
HTTP Basic credentials carried in the URL (``https://user:secret@host/…``, which clients
send as ``Authorization: Basic``; the password is the secret, the user name is free).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Sequence
from enum import Enum

from pydantic import SecretStr


class Match(Enum):
    """Which set of secrets a credential belongs to."""

    NONE = "none"
    PRODUCTION = "production"
    SIMULATION = "simulation"


class SecretChecker:
    """Matches a presented credential against production and simulation secrets."""

    def __init__(
        self, production: Iterable[SecretStr], simulation: Iterable[SecretStr] = ()
    ) -> None:
        self._production = [s.get_secret_value().encode() for s in production]
        self._simulation = [s.get_secret_value().encode() for s in simulation]

    @property
    def configured(self) -> bool:
        """Whether any secret is configured at all."""
        return bool(self._production or self._simulation)

    def check(self, presented: str | None) -> Match:
        """The set ``presented`` belongs to (production wins if it is in both)."""
        value = (presented or "").encode()
        production = simulation = False
        for secret in self._production:
            production |= hmac.compare_digest(value, secret)
        for secret in self._simulation:
            simulation |= hmac.compare_digest(value, secret)
        if not value:
            return Match.NONE
        if production:
            return Match.PRODUCTION
        if simulation:
            return Match.SIMULATION
        return Match.NONE

    def check_any(self, presented: Sequence[str]) -> Match:
        """The best match among several presented credentials, each compared with every
        secret (no early exit: the time depends on how many were presented, not on which)."""
        matches = [self.check(value) for value in presented]
        if Match.PRODUCTION in matches:
            return Match.PRODUCTION
        if Match.SIMULATION in matches:
            return Match.SIMULATION
        return Match.NONE


def basic_password(credentials: str) -> str | None:
    """The password of an ``Authorization: Basic`` value's base64 part, or None if malformed."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    return password if colon else None


def cloudblue_credentials(named: str | None, authorization: str | None) -> list[str]:
    """What a CloudBlue call presents, always three values (``""`` where absent): the value
    of the configured header (``named``, a ``Bearer`` prefix allowed), a Bearer token and a
    Basic password from the ``Authorization`` header."""
    named = named or ""
    if named[:7].lower() == "bearer ":
        named = named[7:]
    scheme, _, rest = (authorization or "").strip().partition(" ")
    bearer = rest.strip() if scheme.lower() == "bearer" else ""
    password = (basic_password(rest) or "") if scheme.lower() == "basic" else ""
    return [named, bearer, password]
