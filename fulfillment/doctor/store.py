"""The last scheduled doctor run, kept in Redis beside the ledger (one JSON value).

Written by the scheduled task and the console's "Check now"; read by the console and by
beat's exporter (:mod:`fulfillment.doctor.metrics`). The key is the ledger's
(:attr:`fulfillment.ledger.keys.Keys.doctor_last`) and the write one of its scripts, like
every other write. It is a report, not order data: it is simply overwritten, and losing it
loses nothing but the last table.
"""

from __future__ import annotations

from fulfillment.doctor.result import Report
from fulfillment.ledger import Ledger, LedgerReader


def save(ledger: Ledger, report: Report) -> None:
    """Keep ``report`` as the last one."""
    ledger.record_doctor_report(report.as_dict())


def load(ledger: LedgerReader) -> Report | None:
    """The last report kept (None: none yet, or unreadable)."""
    data = ledger.doctor_report()
    return Report.from_dict(data) if data is not None else None
