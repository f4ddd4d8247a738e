"""``http``: forward each order to the vendor's own HTTP endpoint (``VENDOR_HTTP_URL``).

The contract a vendor implements is ``vendors/http-api.yaml`` (OpenAPI 3.1). The order's
JSON (:meth:`vendors.base.Order.to_json`) is POSTed with a bearer token
(``VENDOR_HTTP_TOKEN``) and an ``Idempotency-Key`` stable per (request, detail), so a call
repeated after a worker crash is harmless at a vendor that honours it. The whole call
(connect, send, the answer to its last byte) ends within ``VENDOR_HTTP_TIMEOUT_SECONDS``
(:mod:`vendors.deadline`): that is :attr:`HttpAdapter.call_deadline_seconds`, before which a
call cut short is never repeated. The answer maps:

* 2xx: success; a JSON body may carry ``externalProvisionerSubscriptionId``,
  ``...PartnerId``, ``...CompanyId``, ``...PartnerEnrollmentId`` (or the short names
  ``subscriptionId`` …) and ``metadata``;
* 409 (the key is still being processed: the IETF Idempotency-Key draft, Stripe): transient,
  retried after its Retry-After, at most the call deadline (by then the first call is over);
* 422 (the key was used before with another body): :class:`~vendors.errors.VendorContractError`,
  a ``Fail`` whose message says it is a bug to report, and an alert;
* 429, 5xx: transient (Retry-After honoured); a timeout or a connection lost mid-call:
  :class:`~vendors.errors.VendorNoAnswer` (the vendor may still be working on it);
* other 4xx: permanent; the body's ``message`` (or ``errorMessage``, ``error``, ``detail``,
  or its text) is the message the partner sees.

The usage source (:meth:`HttpAdapter.usage`) is a ``GET`` of ``VENDOR_HTTP_USAGE_URL`` with
the :class:`~vendors.usage.UsageQuery` as query parameters, answered ``200`` with
``{"lines": [usage line, ...]}`` (the same contract document): 429 and 5xx (and no answer)
are asked again later, another 4xx is recorded as the source's refusal.

One ``httpx.Client`` per adapter, and one adapter per worker process: building a client
per call costs ten times the throughput.
"""

from __future__ import annotations

import urllib.request
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from config.settings import Settings
from config.version import USER_AGENT
from pax8.errors import parse_retry_after
from pax8.usage import LINES, UsageLine
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.deadline import DeadlineTransport, within
from vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    VendorContractError,
    VendorNoAnswer,
)
from vendors.usage import UsageNotReported, UsageQuery

_ID_FIELDS = {
    "subscription_id": ("externalProvisionerSubscriptionId", "subscriptionId"),
    "partner_id": ("externalProvisionerPartnerId", "partnerId"),
    "company_id": ("externalProvisionerCompanyId", "companyId"),
    "partner_enrollment_id": (
        "externalProvisionerPartnerEnrollmentId",
        "partnerEnrollmentId",
    ),
}

MESSAGE_FIELDS = ("message", "errorMessage", "error", "detail")
"""Where a refusal's message is looked for in a JSON body, in this order."""

# Nothing reached the vendor: the call is over, whatever the deadline says.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


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
        usage_url: str | None = None,
    ) -> None:
        super().__init__(settings)
        self.url = url or (settings.vendor_http_url if settings else None)
        self.usage_url = usage_url or (settings.vendor_http_usage_url if settings else None)
        if not self.url:
            raise ValueError("VENDOR_HTTP_URL is required by the http vendor adapter")
        secret = settings.vendor_http_token if settings else None
        token = token or (secret.get_secret_value() if secret else None)
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout or (settings.vendor_http_timeout_seconds if settings else 30.0)
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
            headers=headers,
            transport=transport or DeadlineTransport(proxy=_proxy_for(self.url)),
        )

    @property
    def call_deadline_seconds(self) -> float:
        """The total timeout: no call outlives it (:mod:`vendors.deadline`)."""
        return self.timeout

    def handle(self, order: Order) -> Provisioned:
        """POST the order and map the answer (every type goes through here)."""
        try:
            response = self.send(order)
        except _NOT_SENT as exc:
            raise TransientVendorError(f"vendor unreachable: {type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            raise VendorNoAnswer(
                f"vendor timed out: no complete answer within {self.timeout:g}s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise VendorNoAnswer(f"vendor connection lost mid-call: {exc}") from exc
        return self.outcome(order, response)

    def send(self, order: Order) -> httpx.Response:
        """The POST the worker makes for ``order``, within the deadline (httpx errors raise)."""
        with within(self.timeout):
            return self._http.post(
                self.url or "",
                json=order.to_json(),
                headers={"Idempotency-Key": order.idempotency_key},
            )

    def outcome(self, order: Order, response: httpx.Response) -> Provisioned:
        """What the vendor's answer means: :class:`Provisioned`, or the vendor error it is."""
        status = response.status_code
        if status == 409:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientVendorError(
                f"vendor still processing this order's Idempotency-Key (HTTP 409): "
                f"{message_of(response)}",
                min(wait, self.timeout) if wait is not None else None,
            )
        if status == 422:
            raise VendorContractError(key_reused_message(order, response))
        if status == 429 or status >= 500:
            raise TransientVendorError(
                f"vendor answered {status}: {message_of(response)}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise PermanentVendorError(message_of(response))
        return provisioned_from(response)

    def usage(self, query: UsageQuery) -> list[UsageLine]:
        """``GET VENDOR_HTTP_USAGE_URL``: the period's current totals of one subscription."""
        if not self.usage_url:
            raise UsageNotReported(
                "VENDOR_HTTP_USAGE_URL is not set: the http adapter has no usage source"
            )
        try:
            with within(self.timeout):
                response = self._http.get(self.usage_url, params=query.to_json())
        except httpx.TransportError as exc:  # a read: asking again is always safe
            raise TransientVendorError(f"usage source unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientVendorError(
                f"usage source answered {status}: {message_of(response)}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400 or status < 200:
            raise PermanentVendorError(f"usage source answered {status}: {message_of(response)}")
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get("lines"), list):
            raise PermanentVendorError('usage source answered 2xx without {"lines": [...]}')
        try:
            return LINES.validate_python(body["lines"])
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error.get("loc", ()))
            raise PermanentVendorError(
                f"usage source answered a line Pax8 would refuse ({where}: {error.get('msg')})"
            ) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``…).

    httpx reads them itself only without a transport of our own, and ours is what bounds
    the call.
    """
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy


def key_reused_message(order: Order, response: httpx.Response) -> str:
    """The ``Fail`` message of a 422: a bug to report, not a problem with the order."""
    text = (
        "The vendor refused this order because its idempotency key was used before with "
        "different order data (HTTP 422). This is a bug in the vendor integration, not a "
        "problem with the order: please report it to the vendor's support, quoting provision "
        f"request {order.request_id}."
    )
    said = message_of(response, fallback="")
    return f"{text} The vendor said: {said}" if said else text


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def message_of(response: httpx.Response, fallback: str | None = None) -> str:
    """The message of a refusal: a JSON field of :data:`MESSAGE_FIELDS`, or short plain text."""
    body = _json(response)
    if isinstance(body, dict):
        for key in MESSAGE_FIELDS:
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    text = response.text.strip()
    if text and len(text) < 1000 and "<html" not in text.lower():
        return text
    if fallback is not None:
        return fallback
    return f"The vendor refused the order (HTTP {response.status_code})."


def provisioned_from(response: httpx.Response) -> Provisioned:
    """The :class:`Provisioned` a 2xx answer carries (ids and metadata, all optional)."""
    body = _json(response)
    if not isinstance(body, dict):
        return Provisioned()
    ids: dict[str, str | None] = {}
    for field, names in _ID_FIELDS.items():
        value = next((body[name] for name in names if body.get(name)), None)
        ids[field] = str(value) if value is not None else None
    metadata = body.get("metadata")
    return Provisioned(**ids, metadata=metadata if isinstance(metadata, dict) else {})
