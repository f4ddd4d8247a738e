"""Rebuild the typed :class:`~vendors.base.Order` of a ledger record from its raw payload."""

from __future__ import annotations

import json

from fulfillment.cloudblue.orders import cloudblue_order
from fulfillment.ledger import Record
from pax8.models import ProvisionNotification, RequestType
from vendors.base import Order


def order_from_record(record: Record) -> Order:
    """The order the adapter receives for ``record``'s current detail."""
    if record.source == "cloudblue":
        return cloudblue_order(record)
    data = json.loads(record.payload)
    notification = ProvisionNotification.model_validate(data)
    return Order(
        type=RequestType(record.type),
        request=notification.provision_request,
        detail=notification.provision_detail,
        attempt=notification.provision_attempt,
        is_simulation=notification.is_simulation,
        raw=data,
        generation=record.generation,
    )
