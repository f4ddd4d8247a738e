"""``fulfillment.report``: post the ProvisionResult(s) a finished request owes Pax8.

The provisioning tasks report right after the vendor answered; this task takes over when
Pax8 could not take the result then, with the report policy's backoff and budget
(:func:`fulfillment.workflow.reporting.report`).
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from fulfillment.ledger.refs import Ref
from fulfillment.names import REPORT
from fulfillment.workflow.reporting import report
from tasks.base import FulfillmentTask


@shared_task(name=REPORT, bind=True, base=FulfillmentTask, queue=REPORT, max_retries=None)
def report_task(
    self: FulfillmentTask, request_id: str, simulation: bool = False, source: str = "pax8"
) -> str:
    """Report ``request_id``'s outcome; retry Pax8's transient errors within the budget."""
    ref = Ref.of(source, simulation, request_id)
    outcome = report(self.services, ref, owner=self.request.id, transient=(SoftTimeLimitExceeded,))
    return self.follow(outcome, ref)
