"""The last scheduled doctor run, kept in Redis beside the ledger (one JSON value).

Written by the scheduled task and the console's "Check now"; read by the console and by
beat's exporter (:mod:`fulfillment.doctor.metrics`). It is a report, not order data: it
is simply overwritten, and losing it loses nothing but the last table.
"""

from __future__ import annotations

import json
from typing import Any

from fulfillment.doctor.result import Report
from fulfillment.ledger import Ledger


def key(ledger: Ledger) -> str:
    """Where the last report is kept, under the ledger's prefix."""
    return f"{ledger.keys.prefix}doctor:last"


def save(ledger: Ledger, report: Report) -> None:
    """Keep ``report`` as the last one."""
    ledger.redis.set(key(ledger), json.dumps(report.as_dict()))


def load(ledger: Ledger) -> Report | None:
    """The last report kept (None: none yet, or unreadable)."""
    raw: Any = ledger.redis.get(key(ledger))
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return Report.from_dict(data) if isinstance(data, dict) else None
