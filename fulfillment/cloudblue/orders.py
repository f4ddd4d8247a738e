"""The order an adapter reads for a CloudBlue record: Pax8-shaped, with the typed payload.

An adapter is written against Pax8's request types; a CloudBlue call reaches it as the
nearest one (:data:`~fulfillment.cloudblue.calls.REQUEST_TYPES`), with ``order.request``
filled the way a Pax8 request would be (its subscription id, the tenant as the company, the
first product's limit as the quantity) and the whole payload in ``order.cloudblue``.
"""

from __future__ import annotations

from typing import Any

from fulfillment.cloudblue.calls import parse_call, request_type_for, stored_request
from fulfillment.ledger import Record
from pax8.models import ProvisionDetail, ProvisionRequest, RequestType
from vendors.base import Order
from vendors.cloudblue import CloudBlueOrder


def cloudblue_order(record: Record) -> Order:
    """The order the adapter receives for CloudBlue ``record``."""
    operation, data = stored_request(record.payload)
    cloudblue = parse_call(data, operation).order
    return Order(
        type=RequestType(record.type),
        request=cloudblue_request(cloudblue, record.id),
        detail=cloudblue_detail(cloudblue, record.id, record.detail_id),
        attempt=None,
        is_simulation=False,
        raw=data,
        source="cloudblue",
        generation=record.generation,
        cloudblue=cloudblue,
    )


def _account_name(account: Any) -> str | None:
    if not isinstance(account, dict):
        return None
    for key in ("companyName", "name", "displayName"):
        if isinstance(account.get(key), str):
            return str(account[key])
    return None


def cloudblue_request(order: CloudBlueOrder, request_id: str) -> ProvisionRequest:
    """The Pax8-shaped request of a CloudBlue order: id, type, company, first product."""
    payload = order.payload
    first = payload.products[0]
    customer = payload.customer or {}
    domain = customer.get("domain") or customer.get("companyDomain")
    parameters = order.parameters
    if not isinstance(domain, str):
        domain = parameters.get("domain") if isinstance(parameters.get("domain"), str) else None
    return ProvisionRequest(
        id=request_id,
        type=request_type_for(order.operation, bool(payload.period_trial)),
        # CloudBlue's own subscription id, as Pax8's is: the vendor's comes back separately
        # (order.cloudblue.known_vendor_subscription_id).
        subscription_id=order.subscription_id,
        company_id=str(payload.tenant_id),
        company_name=_account_name(payload.customer),
        company_domain=domain,
        partner_name=_account_name(payload.reseller),
        product_id=first.mpn,
        product_name=(first.name or {}).get("en_US"),
        quantity=first.limit,
    )


def cloudblue_detail(order: CloudBlueOrder, request_id: str, detail: str) -> ProvisionDetail:
    """The detail of a CloudBlue order: the tenant's parameters and the operation."""
    details: dict[str, Any] = dict(order.parameters)
    details["cloudblueOperation"] = order.operation.value
    details["cloudblueSubscriptionId"] = order.subscription_id
    return ProvisionDetail(id=detail, provision_request_id=request_id, details=details)
