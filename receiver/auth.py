"""Shared-secret checks for webhook credentials, in constant time.

Pax8 webhook configurations are immutable, so rotating a credential means accepting the
old and the new one for a while: every configured secret is compared, always all of
them, so the time taken does not reveal which (or how much of one) matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
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
