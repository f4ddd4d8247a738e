"""CloudBlue request-URL calls for tests: payloads, the response schema, a call helper."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from fulfillment.cloudblue import response

SECRET = "test-cloudblue-secret"
HEADER = "X-Fulfillment-Token"
SCHEMA_PATH = Path(response.__file__).parent / response.SCHEMA
RESPONSE_SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())

# The six operations: (canonical name, a URL suffix PLM might append, the body's spelling).
OPERATIONS = [
    ("creation", "create", "creation"),
    ("limit-change", "change-limits", "limitChange"),
    ("stopping", "stop", "stopping"),
    ("starting", "start", "starting"),
    ("renewal", "renew", "renewal"),
    ("removal", "remove", "removal"),
]


def payload(
    operation: str | None = "creation",
    *,
    subscription_id: str | None = None,
    domain: str | None = "auto",
    products: list[dict[str, Any]] | None = None,
    request_id: str | None = "auto",
    **fields: Any,
) -> dict[str, Any]:
    """A ``ProvisioningRequestPayload`` (as PLM sends it) with fresh ids.

    ``domain="auto"`` gives the customer a unique domain (the example vendor needs one to
    create); ``request_id="auto"`` a fresh ``requestId`` (``None``: none at all).
    """
    body: dict[str, Any] = {
        "tenantId": str(uuid.uuid4()),
        "tenant": {
            "activationParameters": [{"key": "adminEmail", "value": "ops@example.org"}],
            "fulfillmentParameters": [],
        },
        "customer": {"companyName": "CB Customer"},
        "products": products
        or [{"mpn": "SEATS", "resourceTypeId": 1001, "limit": 5, "name": {"en_US": "Seats"}}],
        "subscriptionId": subscription_id or str(uuid.uuid4()),
        "subscriptionNumericId": 1000123,
        "subscriptionPeriod": 1,
        "subscriptionPeriodType": "year",
    }
    if operation is not None:
        body["operation"] = operation
    if request_id == "auto":
        body["requestId"] = f"req-{uuid.uuid4().hex[:12]}"
    elif request_id is not None:
        body["requestId"] = request_id
    if domain == "auto":
        body["customer"]["domain"] = f"{uuid.uuid4().hex[:10]}.example.org"
    elif domain is not None:
        body["customer"]["domain"] = domain
    body.update(fields)
    return body


def follow_up(
    created: dict[str, Any], operation: str, vendor_id: str | None, **fields: Any
) -> dict[str, Any]:
    """A later call for the same subscription, carrying the vendor's id back (both places)."""
    body = json.loads(json.dumps(created))
    body["operation"] = operation
    body["requestId"] = f"req-{uuid.uuid4().hex[:12]}"
    if vendor_id:
        body["vendorSubscriptionId"] = vendor_id
        body["tenant"]["vendorSubscriptionId"] = vendor_id
    body.update(fields)
    return body


def check_response(body: Any) -> None:
    """Fail unless ``body`` is a ProvisioningResponsePayload as the schema describes it."""
    jsonschema.validate(body, RESPONSE_SCHEMA)


def post(
    client: httpx.Client,
    base_url: str,
    body: dict[str, Any] | bytes,
    suffix: str | None = None,
    headers: dict[str, str] | None = None,
    secret: str | None = SECRET,
) -> httpx.Response:
    """POST a call to ``base_url`` (``…/webhooks/cloudblue``), plus ``/suffix`` if given."""
    url = base_url if suffix is None else f"{base_url}/{suffix}"
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if secret is not None:
        all_headers[HEADER] = secret
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(url, content=content, headers=all_headers)
