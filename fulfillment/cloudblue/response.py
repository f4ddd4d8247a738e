"""The ``ProvisioningResponsePayload`` a CloudBlue call is answered with (200).

PLM's type (CBC 21 SDK, ``inhouse-products`` ``ProvisioningResponsePayload``) has two
properties: ``vendorSubscriptionId`` (later requests carry it back, top level and in
``tenant``) and ``fulfillmentParameters``, a list of ``ResponseParameter`` (``id``,
``value``, ``phase``, ``type``, ``structuredValue``). The JSON schema of what is sent is
``fulfillment/cloudblue/schemas/provisioning-response-payload.schema.json``.

From the stored outcome: the adapter's subscription id (else the one the platform sent, so
a stop answered by an adapter that returns no id still names the subscription), and the
adapter's metadata as parameters, one per key:

* a string, number or boolean → ``{"id": key, "value": "<as text>"}``;
* an object → ``{"id": key, "structuredValue": {...}}``;
* a list → ``{"id": key, "value": "<the list as JSON>"}``;
* under the key ``fulfillmentParameters``, a list of ready ``ResponseParameter`` objects is
  passed on as it is (only its five known properties; ``id`` required), for an adapter that
  sets ``phase`` or ``type``.
"""

from __future__ import annotations

import json
from typing import Any

from fulfillment.cloudblue.calls import stored_order
from fulfillment.ledger import Record

SCHEMA = "schemas/provisioning-response-payload.schema.json"
"""The JSON schema of the payload, relative to this package."""

EXPLICIT = "fulfillmentParameters"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _explicit(items: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        parameter: dict[str, Any] = {"id": item["id"]}
        for key in ("value", "phase", "type"):
            if item.get(key) is not None:
                parameter[key] = _text(item[key])
        if isinstance(item.get("structuredValue"), dict):
            parameter["structuredValue"] = item["structuredValue"]
        out.append(parameter)
    return out


def fulfillment_parameters(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The adapter's metadata as ``ResponseParameter`` objects (see the module docstring)."""
    out = _explicit(metadata.get(EXPLICIT))
    given = {parameter["id"] for parameter in out}
    for key, value in metadata.items():
        if key == EXPLICIT or key in given or value is None:
            continue
        if isinstance(value, dict):
            out.append({"id": str(key), "structuredValue": value})
        elif isinstance(value, list):
            out.append({"id": str(key), "value": json.dumps(value, default=str)})
        else:
            out.append({"id": str(key), "value": _text(value)})
    return out


def response_payload(record: Record) -> dict[str, Any]:
    """The 200 body for a record whose outcome is Success."""
    vendor_id = record.external_ids.get("externalProvisionerSubscriptionId")
    if not vendor_id:
        vendor_id = stored_order(record.payload).known_vendor_subscription_id
    body: dict[str, Any] = {}
    if vendor_id:
        body["vendorSubscriptionId"] = vendor_id
    body["fulfillmentParameters"] = fulfillment_parameters(record.metadata)
    return body
