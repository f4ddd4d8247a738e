"""``fulfillment.reconcile``: run by celery beat every ``RECONCILE_INTERVAL_SECONDS``."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from fulfillment.names import RECONCILE
from fulfillment.workflow.reconcile import reconcile
from tasks.base import FulfillmentTask


@shared_task(name=RECONCILE, bind=True, base=FulfillmentTask, queue=RECONCILE)
def reconcile_task(self: FulfillmentTask) -> dict[str, Any]:
    """One reconciliation; returns its summary (also logged)."""
    services = self.services
    summary = reconcile(
        services.ledger,
        services.pax8,
        services.publisher,
        services.policies.reconcile,
        routes=services.settings.routes,
    )
    return summary.as_dict()
