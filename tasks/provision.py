"""``fulfillment.net_new`` … ``fulfillment.partner_enrollment``: one task per request type.

Each rebuilds nothing but ids, calls :func:`fulfillment.workflow.provisioning.fulfil` (provision,
then report in the same task) and follows its outcome. Arguments are ids only (and the
order's route, a name from the routes file), so Flower shows which order a task is for and
no secret or personal data sits in Redis twice. A task is consumed from its per-type queue or
from its route's queue (``fulfillment/names.py``): the name is the same.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from fulfillment.ledger.refs import Ref
from fulfillment.names import PROVISION_TASKS
from fulfillment.workflow.provisioning import fulfil
from pax8.models import RequestType
from tasks.base import FulfillmentTask
from worker import liveness


def _define(request_type: RequestType) -> Any:
    name = PROVISION_TASKS[request_type]

    def provision_task(
        self: FulfillmentTask,
        request_id: str,
        detail_id: str,
        simulation: bool = False,
        source: str = "pax8",
        route: str | None = None,
        **_: Any,
    ) -> str:
        ref = Ref.of(source, simulation, request_id)
        outcome = fulfil(
            self.services,
            ref,
            detail_id,
            self.request.id,
            transient=(SoftTimeLimitExceeded,),
            route=route,
            worker=liveness.current_worker(),
        )
        return self.follow(outcome, ref)

    provision_task.__name__ = request_type.snake
    provision_task.__doc__ = f"Provision a {request_type.value} request through the vendor adapter."
    return shared_task(name=name, bind=True, base=FulfillmentTask, queue=name, max_retries=None)(
        provision_task
    )


net_new = _define(RequestType.NET_NEW)
update = _define(RequestType.UPDATE)
deprovision = _define(RequestType.DEPROVISION)
trial_create = _define(RequestType.TRIAL_CREATE)
trial_convert = _define(RequestType.TRIAL_CONVERT)
change_product = _define(RequestType.CHANGE_PRODUCT)
partner_enrollment = _define(RequestType.PARTNER_ENROLLMENT)
renewal = _define(RequestType.RENEWAL)
