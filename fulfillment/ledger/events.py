"""One log line per state change, carrying the ids an operator searches for."""

from __future__ import annotations

import logging
from typing import Any

from fulfillment.ledger.records import Record
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.states import State

log = logging.getLogger("fulfillment.state")


def log_state(
    state: State | None,
    record: Record | None = None,
    *,
    ref: Ref | None = None,
    event: str = "",
    level: int = logging.INFO,
    **extra: Any,
) -> None:
    """Log ``state`` for a request (``record``, or only its ``ref``): id, attempt, type and
    simulation flag, plus ``extra``. Ids are checked where they enter (fulfillment.ledger.refs), so
    none can forge a line here."""
    ref = ref or (record.ref if record else None)
    fields: dict[str, Any] = {
        "request_id": ref.id if ref else None,
        "attempt_id": record.attempt_id if record else extra.pop("attempt_id", None),
        "request_type": record.type if record else extra.pop("request_type", None),
        "simulation": ref.simulation if ref else extra.pop("simulation", None),
        "route": record.route if record else extra.pop("route", None),
        "state": state,
        "event": event,
        **extra,
    }
    text = " ".join(f"{key}={value}" for key, value in fields.items() if value not in (None, ""))
    log.log(level, "%s", text, extra={"fields": fields})
