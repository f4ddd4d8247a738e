"""Pax8's page envelope: ``{"content": [...], "page": {size, totalElements, totalPages, number}}``.

Pages are numbered from 0 (``page`` query parameter, default 0) and hold ``size`` items
(default 10, at most 1000: a larger size is clamped, as Spring Data does). A page past the
end is empty but still tells the totals, so a client can stop.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.errors import invalid

DEFAULT_SIZE = 10
MAX_SIZE = 1000


@dataclass(frozen=True)
class PageRequest:
    """Which page a list call asked for."""

    number: int = 0
    size: int = DEFAULT_SIZE

    @property
    def start(self) -> int:
        """Index of the first item of the page."""
        return self.number * self.size


def page_request(args: Mapping[str, str]) -> PageRequest:
    """Read ``page`` and ``size`` from query arguments; 400 when not a valid integer."""
    number = _integer(args, "page", 0, minimum=0)
    size = min(_integer(args, "size", DEFAULT_SIZE, minimum=1), MAX_SIZE)
    return PageRequest(number, size)


def _integer(args: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise invalid(name, f"must be an integer, got {raw!r}") from None
    if value < minimum:
        raise invalid(name, f"must be >= {minimum}, got {value}")
    return value


def page(items: Sequence[Any], request: PageRequest) -> dict[str, Any]:
    """The page ``request`` of ``items`` in Pax8's envelope."""
    total = len(items)
    return {
        "content": list(items[request.start : request.start + request.size]),
        "page": {
            "size": request.size,
            "totalElements": total,
            "totalPages": math.ceil(total / request.size),
            "number": request.number,
        },
    }
