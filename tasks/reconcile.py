"""``fulfillment.reconcile``: run by celery beat every ``RECONCILE_INTERVAL_SECONDS``."""

from __future__ import annotations

from typing import Any

from fulfillment.names import RECONCILE
from fulfillment.reconcile import policy_from, reconcile
from tasks.context import context
from worker.app import app


@app.task(name=RECONCILE, queue=RECONCILE)
def reconcile_task() -> dict[str, Any]:
    """One reconciliation; returns its summary (also logged)."""
    ctx = context()
    summary = reconcile(ctx.ledger, ctx.pax8, ctx.publisher, policy_from(ctx.settings))
    return summary.as_dict()
