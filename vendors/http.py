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
* 408, 429, 5xx: transient (Retry-After honoured); a timeout or a connection lost mid-call:
  :class:`~vendors.errors.VendorNoAnswer` (the vendor may still be working on it);
* a redirect, a refused credential, a wrong URL, an answer the contract does not allow, a
  2xx over ``VENDOR_HTTP_MAX_ANSWER_BYTES``: :class:`~vendors.errors.VendorMisconfigured`,
  the order held with an alert naming the fix (never a Success, never a Fail);
* other 4xx: permanent; the body's ``message`` (or ``errorMessage``, ``error``, ``detail``,
  or its text) is the message the partner sees.

Which is which is :func:`vendors.answers.judge`, the rule ``fulfill check-vendor`` applies
too. The answer is read as a stream and never beyond ``VENDOR_HTTP_MAX_ANSWER_BYTES``: a
vendor that answers 40 MB costs the worker that many bytes at most, once.

The usage source (:meth:`HttpAdapter.usage`) is a ``GET`` of ``VENDOR_HTTP_USAGE_URL`` with
the :class:`~vendors.usage.UsageQuery` as query parameters, answered ``200`` with
``{"lines": [usage line, ...]}`` (the same contract document). Its answer is read and judged
by the same rule: only a 2xx carries lines; 408, 409, 429 and 5xx (and no answer) are asked
again later, a misconfiguration (a redirect, a refused credential…) too, with its fix named;
another 4xx is recorded as the source's refusal.

One ``httpx.Client`` per adapter, and one adapter per worker process: building a client
per call costs ten times the throughput.
"""

from __future__ import annotations

import json
import urllib.request
import zlib
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from config.routes import Backend
from config.settings import Settings
from config.version import USER_AGENT
from pax8.errors import parse_retry_after
from pax8.usage import LINES, UsageLine
from vendors.answers import Answer, Problem, Verdict, judge, message_of
from vendors.base import MAX_METADATA_BYTES, Order, Provisioned, VendorAdapter
from vendors.deadline import DeadlineTransport, within
from vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    VendorContractError,
    VendorMisconfigured,
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

DEFAULT_MAX_ANSWER_BYTES = 64 * 1024
"""What is read of an answer when the settings do not say (``VENDOR_HTTP_MAX_ANSWER_BYTES``)."""

KEEPALIVE_SECONDS = 1.0
"""How long an idle connection to the vendor is kept for the next call. Below the idle
timeout of the servers vendors' APIs run behind (gunicorn's 2 s; uvicorn's, Node's and
Apache's 5 s; nginx's 75 s), so the vendor never closes a connection this client may still
send an order on: a call sent as the server closes its side is lost mid-call, which counts
as no answer, and its repeat waits for the call's whole deadline. httpx's default (5 s)
equals the common 5 s and would race it. Under load calls follow each other far closer
than 1 s, so connections are still reused."""

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
        max_answer_bytes: int | None = None,
        usage_url: str | None = None,
        connections: int | None = None,
    ) -> None:
        super().__init__(settings)
        self.url = url or (settings.vendor_http_url if settings else None)
        self.usage_url = usage_url or (settings.vendor_http_usage_url if settings else None)
        if not self.url:
            raise ValueError("VENDOR_HTTP_URL is required by the http vendor adapter")
        secret = settings.vendor_http_token if settings else None
        token = token or (secret.get_secret_value() if secret else None)
        # Uncompressed answers: what is read is what is kept (a compressed one is still
        # decoded, within the same cap).
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout or (settings.vendor_http_timeout_seconds if settings else 30.0)
        self.max_answer_bytes = max_answer_bytes or (
            settings.vendor_http_max_answer_bytes if settings else DEFAULT_MAX_ANSWER_BYTES
        )
        connections = connections or (settings.pool_concurrency if settings else 10)
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
            headers=headers,
            # As many connections kept as orders in flight (WORKER_CONCURRENCY): under
            # gevent 100 greenlets share this client without opening one each per order.
            transport=transport
            or DeadlineTransport(
                proxy=_proxy_for(self.url),
                limits=httpx.Limits(
                    max_connections=connections,
                    max_keepalive_connections=connections,
                    keepalive_expiry=KEEPALIVE_SECONDS,
                ),
            ),
        )

    @classmethod
    def for_backend(cls, settings: Settings, backend: Backend) -> HttpAdapter:
        """The ``http`` adapter of one route's backend: its URL, token, timeout, answer cap
        and usage source, and nothing of ``VENDOR_HTTP_*`` the route does not say (a route
        without a token sends none)."""
        token = backend.token.get_secret_value() if backend.token else None
        adapter = cls(
            None,
            url=backend.url,
            token=token,
            timeout=backend.timeout_seconds,
            max_answer_bytes=backend.max_answer_bytes,
            usage_url=backend.usage_url,
            connections=settings.pool_concurrency,
        )
        adapter.settings = settings
        adapter.backend = backend
        return adapter

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

    def send(self, order: Order) -> Answer:
        """The POST the worker makes for ``order``, within the deadline, its answer read up to
        :attr:`max_answer_bytes` (httpx errors raise)."""
        with within(self.timeout):
            request = self._http.build_request(
                "POST",
                self.url or "",
                json=order.to_json(),
                headers={"Idempotency-Key": order.idempotency_key},
            )
            return self.exchange(request)

    def exchange(self, request: httpx.Request) -> Answer:
        """Send ``request`` and read its answer up to :attr:`max_answer_bytes` (within the
        caller's deadline; httpx errors raise)."""
        response = self._http.send(request, stream=True)
        try:
            body, truncated = read_capped(response, self.max_answer_bytes)
        finally:
            response.close()
        headers = httpx.Headers(
            [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
        )
        return Answer(response.status_code, headers, body, truncated, str(request.url))

    def outcome(self, order: Order, answer: Answer) -> Provisioned:
        """What the vendor's answer means: :class:`Provisioned`, or the vendor error it is
        (:func:`vendors.answers.judge`)."""
        judgement = judge(answer, self.max_answer_bytes)
        status = answer.status
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if judgement.verdict is Verdict.SUCCESS:
            return provisioned_from(answer)
        if judgement.verdict is Verdict.MISCONFIGURED:
            assert judgement.problem is not None
            raise VendorMisconfigured(judgement.fix, judgement.problem.value, retry_after)
        if judgement.verdict is Verdict.CONTRACT:
            raise VendorContractError(key_reused_message(order, answer))
        if judgement.verdict is Verdict.REFUSED:
            raise PermanentVendorError(message_of(answer))
        if status == 409:
            raise TransientVendorError(
                f"vendor still processing this order's Idempotency-Key (HTTP 409): "
                f"{message_of(answer)}",
                min(retry_after, self.timeout) if retry_after is not None else None,
            )
        raise TransientVendorError(f"vendor answered {status}: {message_of(answer)}", retry_after)

    def usage(self, query: UsageQuery) -> list[UsageLine]:
        """``GET VENDOR_HTTP_USAGE_URL``: the period's current totals of one subscription."""
        if not self.usage_url:
            raise UsageNotReported(
                "VENDOR_HTTP_USAGE_URL is not set: the http adapter has no usage source"
            )
        try:
            with within(self.timeout):
                request = self._http.build_request("GET", self.usage_url, params=query.to_json())
                answer = self.exchange(request)
        except httpx.TransportError as exc:  # a read: asking again is always safe
            raise TransientVendorError(f"usage source unreachable: {type(exc).__name__}") from exc
        judgement = judge(answer, self.max_answer_bytes)
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if judgement.verdict is Verdict.MISCONFIGURED:
            assert judgement.problem is not None
            raise VendorMisconfigured(judgement.fix, judgement.problem.value, retry_after)
        if judgement.verdict in (Verdict.REFUSED, Verdict.CONTRACT):
            raise PermanentVendorError(
                f"usage source answered {answer.status}: {message_of(answer)}"
            )
        if judgement.verdict is not Verdict.SUCCESS:
            raise TransientVendorError(
                f"usage source answered {answer.status}: {message_of(answer)}", retry_after
            )
        body = answer.json()
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


def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of ``response``'s body (decoded when the vendor compressed it
    anyway), and whether it went on beyond them. Reading stops there: the rest is never
    fetched, however much the vendor sends."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "deflate", "x-gzip", ""):
        raise VendorMisconfigured(
            f"the vendor endpoint compressed its answer with {encoding[:20]!r} although the "
            "worker asked for none (Accept-Encoding: identity): answer uncompressed JSON",
            Problem.PROTOCOL.value,
        )
    inflate = None
    if encoding not in ("identity", ""):
        inflate = zlib.decompressobj(wbits=47)  # a gzip or a zlib header, whichever it has
    parts: list[bytes] = []
    size = 0
    # A response made in memory (a test's transport) holds its body already.
    chunks = [response.content] if response.is_stream_consumed else response.iter_raw()
    for raw in chunks:
        data = raw
        if inflate is not None:
            try:
                data = inflate.decompress(raw, limit + 1 - size)
            except zlib.error as exc:
                raise TransientVendorError(f"vendor answer could not be decoded: {exc}") from None
        parts.append(data)
        size += len(data)
        if size > limit or (inflate is not None and inflate.unconsumed_tail):
            return b"".join(parts)[:limit], True
    return b"".join(parts), False


def key_reused_message(order: Order, answer: Answer) -> str:
    """The ``Fail`` message of a 422: a bug to report, not a problem with the order."""
    text = (
        "The vendor refused this order because its idempotency key was used before with "
        "different order data (HTTP 422). This is a bug in the vendor integration, not a "
        "problem with the order: please report it to the vendor's support, quoting provision "
        f"request {order.request_id}."
    )
    said = message_of(answer, fallback="")
    return f"{text} The vendor said: {said}" if said else text


def provisioned_from(answer: Answer) -> Provisioned:
    """The :class:`Provisioned` a 2xx answer carries (ids and metadata, all optional).

    Metadata over :data:`~vendors.base.MAX_METADATA_BYTES` is not cut or dropped: the order
    is held as too large (the ids beside it are the vendor's work, kept for the retry)."""
    body = answer.json()
    if not isinstance(body, dict):
        return Provisioned()
    ids: dict[str, str | None] = {}
    for field, names in _ID_FIELDS.items():
        value = next((body[name] for name in names if body.get(name)), None)
        ids[field] = str(value) if value is not None else None
    metadata = body.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    size = len(json.dumps(metadata, default=str))
    if size > MAX_METADATA_BYTES:
        raise VendorMisconfigured(
            f"the vendor endpoint answered {answer.status} with {size} bytes of metadata, "
            f"over the {MAX_METADATA_BYTES} the worker stores and Pax8 is sent: the order is "
            "held, not reported; have the vendor answer less metadata, then the retry (same "
            "Idempotency-Key) reads the first call's answer",
            Problem.TOO_LARGE.value,
        )
    return Provisioned(**ids, metadata=metadata)
