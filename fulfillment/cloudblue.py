"""CloudBlue Commerce ``ProvisioningRequestPayload`` → the Pax8-shaped request the adapter knows.

CloudBlue calls a vendor "request URL" per subscription operation (creation, limit
change, stop, start, renewal, removal). The same vendor adapter serves both sources, so
each operation maps to the nearest Pax8 request type; the original operation is kept
on :attr:`vendors.base.Order.operation` (``stop`` and ``start`` arrive as ``Update``
with that operation, since Pax8 has no suspend/resume type).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fulfillment.refs import is_id
from pax8.models import ProvisionDetail, ProvisionRequest, RequestType

_OPERATIONS: dict[str, RequestType] = {}
for _names, _kind in (
    (("create", "creation", "setup", "provision", "purchase"), RequestType.NET_NEW),
    (
        (
            "change",
            "changelimits",
            "limitchange",
            "changelimit",
            "upgrade",
            "downgrade",
            "update",
            "stop",
            "suspend",
            "start",
            "resume",
        ),
        RequestType.UPDATE,
    ),
    (("renew", "renewal", "prolong"), RequestType.RENEWAL),
    (
        ("remove", "removal", "delete", "cancel", "cancellation", "terminate", "destroy"),
        RequestType.DEPROVISION,
    ),
):
    for _name in _names:
        _OPERATIONS[_name] = _kind


class CloudBlueError(Exception):
    """The payload lacks what a request needs; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message


def normalize_operation(operation: str) -> str:
    """``"Limit Change"`` / ``limit_change`` → ``limitchange``."""
    return "".join(char for char in operation.lower() if char.isalnum())


def request_type_for(operation: str, trial: bool = False) -> RequestType:
    """The Pax8 request type of a CloudBlue operation."""
    kind = _OPERATIONS.get(normalize_operation(operation))
    if kind is None:
        known = "creation, limit change, stop, start, renewal, removal"
        raise CloudBlueError(
            "operation", f"{repr(operation)[:60]} is not a known operation ({known})"
        )
    if kind is RequestType.NET_NEW and trial:
        return RequestType.TRIAL_CREATE
    return kind


def _required(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None or value == "":
        raise CloudBlueError(name, "missing or empty")
    return value


def _id(value: Any, field: str) -> str:
    """An id (numbers are CloudBlue's usual form) as text, checked like every outside id."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not is_id(text):
        raise CloudBlueError(
            field, "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return str(text)


def _account_name(account: Any) -> str | None:
    if not isinstance(account, dict):
        return None
    for key in ("companyName", "name", "displayName"):
        if isinstance(account.get(key), str):
            return str(account[key])
    return None


def _parameters(tenant: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group in ("activationParameters", "fulfillmentParameters"):
        for item in tenant.get(group) or []:
            if isinstance(item, dict) and item.get("key"):
                out[str(item["key"])] = item.get("structuredValue") or item.get("value")
    return out


def cloudblue_request(data: dict[str, Any]) -> ProvisionRequest:
    """The Pax8-shaped request for a ProvisioningRequestPayload (id, type, product…)."""
    operation = str(_required(data, "operation"))
    subscription = _id(_required(data, "subscriptionId"), "subscriptionId")
    _id(_required(data, "tenantId"), "tenantId")
    tenant = _required(data, "tenant")
    if not isinstance(tenant, dict):
        raise CloudBlueError("tenant", "must be an object")
    products = _required(data, "products")
    if not isinstance(products, list) or not products:
        raise CloudBlueError("products", "must be a non-empty list")
    kind = request_type_for(operation, bool(data.get("periodTrial")))
    request_id = data.get("requestId")
    if request_id:
        request_id = _id(request_id, "requestId")
    if data.get("vendorSubscriptionId"):
        _id(data["vendorSubscriptionId"], "vendorSubscriptionId")
    if not request_id:
        # No id from CloudBlue: derive one that is stable for a redelivered payload.
        seed = json.dumps(data, sort_keys=True).encode()
        request_id = "cb-" + hashlib.sha256(seed).hexdigest()[:32]
    first = products[0] if isinstance(products[0], dict) else {}
    name = first.get("name")
    product_name = name.get("en_US") if isinstance(name, dict) else None
    customer = data.get("customer")
    domain = None
    if isinstance(customer, dict):
        domain = customer.get("domain") or customer.get("companyDomain")
    parameters = _parameters(tenant)
    return ProvisionRequest(
        id=str(request_id),
        type=kind,
        subscription_id=str(data.get("vendorSubscriptionId") or subscription),
        company_id=str(data["tenantId"]),
        company_name=_account_name(customer),
        company_domain=domain or parameters.get("domain"),
        partner_name=_account_name(data.get("reseller")),
        product_id=str(first.get("mpn")) if first.get("mpn") else None,
        product_name=product_name,
        quantity=first.get("limit"),
    )


def cloudblue_detail(
    request: ProvisionRequest, detail_id: str, data: dict[str, Any]
) -> ProvisionDetail:
    """The detail of a CloudBlue order: the tenant's parameters and the raw operation."""
    tenant = data.get("tenant") if isinstance(data.get("tenant"), dict) else {}
    details = _parameters(tenant or {})
    details["cloudblueOperation"] = data.get("operation")
    details["cloudblueSubscriptionId"] = data.get("subscriptionId")
    return ProvisionDetail(id=detail_id, provision_request_id=request.id, details=details)
