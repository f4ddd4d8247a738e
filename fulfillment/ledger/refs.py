"""Which order a record is: its scope (source and environment) and its checked id.

Every id that comes from outside (a webhook's request, detail and attempt ids, a CloudBlue
request's ids, ids in Pax8's own answers) is checked against :data:`ID_PATTERN` before it
becomes part of a Redis key, a URL path, a log field or a line in a terminal: letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most 128 characters
(Pax8's UUIDs and CloudBlue's ids fit; ``:``, ``/``, ``?``, spaces and control characters
do not).

A record is keyed by its :class:`Ref`: the same id in two scopes is two records, so no
notice of one source or environment (a simulation credential, the CloudBlue secret) can
ever change a record of another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

Source = Literal["pax8", "cloudblue"]


class InvalidId(ValueError):
    """An outside id does not match :data:`ID_PATTERN`; ``field`` names where it came from."""

    def __init__(self, field: str, value: object) -> None:
        super().__init__(field, value)
        self.field = field
        self.value = value

    def __str__(self) -> str:
        return (
            f"{self.field}: must be 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )


def is_id(value: object) -> bool:
    """Whether ``value`` is a string that matches :data:`ID_PATTERN`."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_id(value: object, field: str) -> str:
    """``value`` if it is a valid id, else :class:`InvalidId` naming ``field``."""
    if not is_id(value):
        raise InvalidId(field, value)
    assert isinstance(value, str)
    return value


class Scope(StrEnum):
    """Where an order comes from: one ledger namespace each."""

    PAX8 = "pax8"
    PAX8_SIMULATION = "pax8-sim"
    CLOUDBLUE = "cloudblue"

    @classmethod
    def of(cls, source: str, simulation: bool) -> Scope:
        """The scope of an order of ``source`` (simulated or not)."""
        if source == "cloudblue":
            return cls.CLOUDBLUE
        if source != "pax8":
            raise ValueError(f"unknown source {source!r}")
        return cls.PAX8_SIMULATION if simulation else cls.PAX8

    @property
    def source(self) -> Source:
        """``pax8`` or ``cloudblue``."""
        return "cloudblue" if self is Scope.CLOUDBLUE else "pax8"

    @property
    def simulation(self) -> bool:
        """Whether orders of this scope are simulated."""
        return self is Scope.PAX8_SIMULATION


@dataclass(frozen=True)
class Ref:
    """One order: ``scope`` and ``id`` (checked)."""

    scope: Scope
    id: str

    def __post_init__(self) -> None:
        check_id(self.id, "id")

    @classmethod
    def of(cls, source: str, simulation: bool, request_id: str) -> Ref:
        """The ref of request ``request_id`` of ``source`` (simulated or not)."""
        return cls(Scope.of(source, simulation), request_id)

    @classmethod
    def parse(cls, member: str) -> Ref:
        """The ref a ledger set member (``scope:id``) names."""
        scope, _, request_id = member.partition(":")
        return cls(Scope(scope), request_id)

    @property
    def member(self) -> str:
        """The record's name in the ledger's sets, and in its keys: ``scope:id``."""
        return f"{self.scope}:{self.id}"

    @property
    def source(self) -> Source:
        """``pax8`` or ``cloudblue``."""
        return self.scope.source

    @property
    def simulation(self) -> bool:
        """Whether the order is simulated."""
        return self.scope.simulation

    def __str__(self) -> str:
        return self.member
