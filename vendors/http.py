"""``http``: forward each order to the vendor's own HTTP endpoint (``VENDOR_HTTP_URL``).

The order's JSON (:meth:`vendors.base.Order.to_json`) is POSTed with a bearer token
(``VENDOR_HTTP_TOKEN``) and an ``Idempotency-Key`` stable per (request, detail), so a call
repeated after a worker crash is harmless at a vendor that honours it. The answer maps:

* 2xx: success; a JSON body may carry ``externalProvisionerSubscriptionId``,
  ``...PartnerId``, ``...CompanyId``, ``...PartnerEnrollmentId`` (or the short names
  ``subscriptionId`` …) and ``metadata``;
* 429, 5xx, timeouts, connection errors: transient (Retry-After honoured);
* other 4xx: permanent; the body's ``message`` (or ``error``, or its text) is the message
  the partner sees.

One ``httpx.Client`` per adapter, and one adapter per worker process: building a client
per call costs ten times the throughput.
"""

from __future__ import annotations

from typing import Any

import httpx

from config.settings import Settings
from config.version import USER_AGENT
from pax8.errors import parse_retry_after
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.errors import PermanentVendorError, TransientVendorError

_ID_FIELDS = {
    "subscription_id": ("externalProvisionerSubscriptionId", "subscriptionId"),
    "partner_id": ("externalProvisionerPartnerId", "partnerId"),
    "company_id": ("externalProvisionerCompanyId", "companyId"),
    "partner_enrollment_id": (
        "externalProvisionerPartnerEnrollmentId",
        "partnerEnrollmentId",
    ),
}


class HttpAdapter(VendorAdapter):
    """Forwards every order type to one URL; the JSON ``type`` field says which it is."""

    name = "http"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        timeout: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(settings)
        self.url = url or (settings.vendor_http_url if settings else None)
        if not self.url:
            raise ValueError("VENDOR_HTTP_URL is required by the http vendor adapter")
        secret = settings.vendor_http_token if settings else None
        token = token or (secret.get_secret_value() if secret else None)
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        seconds = timeout or (settings.vendor_http_timeout_seconds if settings else 30.0)
        self._http = httpx.Client(
            timeout=httpx.Timeout(seconds, connect=min(5.0, seconds)),
            headers=headers,
            transport=transport,
        )

    def handle(self, order: Order) -> Provisioned:
        """POST the order and map the answer (every type goes through here)."""
        try:
            response = self._http.post(
                self.url or "",
                json=order.to_json(),
                headers={"Idempotency-Key": order.idempotency_key},
            )
        except httpx.TimeoutException as exc:
            raise TransientVendorError(f"vendor timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise TransientVendorError(f"vendor unreachable: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientVendorError(
                f"vendor answered {status}: {_message(response)}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise PermanentVendorError(_message(response))
        return _provisioned(response)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    body = _json(response)
    if isinstance(body, dict):
        for key in ("message", "errorMessage", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    text = response.text.strip()
    if text and len(text) < 1000 and "<html" not in text.lower():
        return text
    return f"The vendor refused the order (HTTP {response.status_code})."


def _provisioned(response: httpx.Response) -> Provisioned:
    body = _json(response)
    if not isinstance(body, dict):
        return Provisioned()
    ids: dict[str, str | None] = {}
    for field, names in _ID_FIELDS.items():
        value = next((body[name] for name in names if body.get(name)), None)
        ids[field] = str(value) if value is not None else None
    metadata = body.get("metadata")
    return Provisioned(**ids, metadata=metadata if isinstance(metadata, dict) else {})
