"""The orders page's query string, read into a :class:`~fulfillment.views.orders.OrderQuery`.

Every value comes from the browser: only the listed choices are taken, anything else is
ignored (the filter is off), so no outside text reaches the ledger's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fulfillment.ledger.refs import Scope
from fulfillment.ledger.states import State
from fulfillment.views.orders import OrderQuery
from pax8.models import RequestType

AGES: dict[str, float] = {
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "6h": 6 * 3600,
    "1d": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
}
TYPES = tuple(kind.value for kind in RequestType)
PER_PAGE = 50
MAX_PAGE = 400


@dataclass(frozen=True)
class Filters:
    """The filters as the form shows them, and the query they make."""

    state: str = ""
    type: str = ""
    scope: str = ""
    simulation: str = ""
    older: str = ""
    newer: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Filters:
        """Take the known choices from ``args``; drop everything else."""

        def choice(name: str, allowed: tuple[str, ...] | list[str]) -> str:
            value = args.get(name, "")
            return value if value in allowed else ""

        try:
            page = min(MAX_PAGE, max(1, int(args.get("page", "1"))))
        except ValueError:
            page = 1
        return cls(
            state=choice("state", [state.value for state in State]),
            type=choice("type", TYPES),
            scope=choice("scope", [scope.value for scope in Scope]),
            simulation=choice("simulation", ("yes", "no")),
            older=choice("older", tuple(AGES)),
            newer=choice("newer", tuple(AGES)),
            page=page,
        )

    def query(self) -> OrderQuery:
        """The ledger query."""
        return OrderQuery(
            state=State(self.state) if self.state else None,
            type=self.type or None,
            scope=Scope(self.scope) if self.scope else None,
            simulation={"yes": True, "no": False}.get(self.simulation),
            older_than=AGES.get(self.older),
            newer_than=AGES.get(self.newer),
            page=self.page,
            per_page=PER_PAGE,
        )

    def args(self, **changes: str | int) -> dict[str, str | int]:
        """The query string of these filters (for paging links), without empty ones."""
        values: dict[str, str | int] = {
            "state": self.state,
            "type": self.type,
            "scope": self.scope,
            "simulation": self.simulation,
            "older": self.older,
            "newer": self.newer,
            "page": self.page,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v and not (k == "page" and v == 1)}
