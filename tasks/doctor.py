"""``fulfillment.doctor``: ``fulfill doctor``'s checks, run by celery beat every
``DOCTOR_INTERVAL_SECONDS``; the report is stored for the console and the metrics."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from fulfillment.doctor.context import Doctor
from fulfillment.doctor.run import scheduled
from fulfillment.names import DOCTOR, RECONCILE
from tasks.base import FulfillmentTask
from worker.inspection import CeleryWorkers


@shared_task(name=DOCTOR, bind=True, base=FulfillmentTask, queue=RECONCILE)
def doctor_task(self: FulfillmentTask) -> dict[str, Any]:
    """One doctor run; returns its status and the checks that failed."""
    doctor = Doctor(self.services.settings, self.services, CeleryWorkers(self.app))
    try:
        report = scheduled(doctor)
    finally:
        doctor.close()
    failing = [check.name for check in report.checks if check.status.value == "fail"]
    return {"status": report.status.value, "failing": failing}
