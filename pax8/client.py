"""A typed, synchronous client for all 21 operations of Pax8's Vendor Provisioning API.

One :class:`Pax8Client` holds one ``httpx.Client`` (connection reuse matters: a new
client per call costs ten times the throughput) and one token cache per credential
set. Every operation takes ``simulation=``: simulated requests are only visible to, and
must only be answered with, the simulation credentials.

Reads are idempotent and retried on transient errors with jittered exponential backoff
(honouring Retry-After up to a cap). Writes are never retried here: the caller knows
whether repeating one is safe (the report task checks for an existing result first).

A ``429`` holds off the whole client (:mod:`pax8.holdoff`): until its ``Retry-After`` has
passed, no call of the process is sent, whichever greenlet or thread makes it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from config.version import USER_AGENT
from pax8.auth import AUDIENCE, Credentials, TokenCache
from pax8.errors import (
    AuthenticationError,
    CredentialsMissing,
    Pax8Error,
    RateLimited,
    ServerError,
    TransientError,
    error_from_response,
    error_from_transport,
)
from pax8.holdoff import HoldOff
from pax8.models import (
    CreatedWebhook,
    Page,
    ProvisionAttempt,
    ProvisionDetail,
    Provisioner,
    ProvisionRequest,
    ProvisionResult,
    ProvisionTestingOrderEvent,
    SharedSecretCreate,
    Webhook,
    WebhookCreate,
    to_wire,
)

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

DEFAULT_PAGE_SIZE = 100
MAX_PAGES = 100_000


class Pax8Client:
    """Pax8's provisioning API with production and simulation credential sets."""

    def __init__(
        self,
        api_url: str,
        token_url: str,
        *,
        production: Credentials | None = None,
        simulation: Credentials | None = None,
        timeout: float | httpx.Timeout = 10.0,
        connections: int = 10,
        retries: int = 2,
        backoff: float = 0.5,
        max_retry_wait: float = 30.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        audience: str = AUDIENCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # One pool per process, as many connections kept open as orders in flight (the
        # worker's concurrency): a greenlet reporting a result reuses a connection, never
        # opens its own.
        self._http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )
        self._tokens: dict[bool, TokenCache] = {}
        if production is not None:
            self._tokens[False] = TokenCache(self._http, token_url, production, audience=audience)
        if simulation is not None:
            self._tokens[True] = TokenCache(self._http, token_url, simulation, audience=audience)
        self._retries = retries
        self._backoff = backoff
        self._max_retry_wait = max_retry_wait
        self._page_size = page_size
        self._sleep = sleep
        self.calls = 0
        self.hold_off = HoldOff(max_retry_wait, clock)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Pax8Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def has_credentials(self, simulation: bool) -> bool:
        """Whether the credential set for ``simulation`` is configured."""
        return simulation in self._tokens

    def tokens(self, simulation: bool) -> TokenCache:
        """The token cache of one credential set."""
        try:
            return self._tokens[simulation]
        except KeyError:
            which = "simulation" if simulation else "production"
            raise CredentialsMissing(
                f"no {which} Pax8 credentials configured "
                f"(set PAX8_{'SIMULATION_' if simulation else ''}CLIENT_ID and _SECRET)"
            ) from None

    # -- transport ---------------------------------------------------------------------

    def held_for(self) -> float:
        """Seconds this client still holds off after a 429 (0: its Retry-After has passed)."""
        return self.hold_off.held_for()

    def _send_once(self, method: str, path: str, simulation: bool, **kwargs: Any) -> httpx.Response:
        what = f"{method} {path}"
        first = self.hold_off.admit(what)
        try:
            return self._send_admitted(what, method, path, simulation, **kwargs)
        finally:
            self.hold_off.answered(first)

    def _send_admitted(
        self, what: str, method: str, path: str, simulation: bool, **kwargs: Any
    ) -> httpx.Response:
        cache = self.tokens(simulation)
        for refreshed in (False, True):
            token = cache.token()
            headers = {"Authorization": f"Bearer {token}"}
            self.calls += 1
            try:
                response = self._http.request(
                    method, self.api_url + path, headers=headers, **kwargs
                )
            except httpx.TransportError as exc:
                raise error_from_transport(exc, what) from exc
            if response.status_code != 401:
                break
            # One refresh on a 401, never a loop: a second 401 is a permanent error.
            cache.invalidate(token)
            if refreshed:
                error = error_from_response(response)
                raise AuthenticationError(
                    f"{error.message} (after a fresh token)", 401, getattr(error, "body", None)
                )
        if response.is_error:
            error = error_from_response(response)
            if isinstance(error, RateLimited):
                self.hold_off.hold(error)
            raise error
        return response

    def _request(
        self, method: str, path: str, *, simulation: bool, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return self._send_once(method, path, simulation, **kwargs)
            except TransientError as exc:
                if not idempotent or attempt >= self._retries:
                    raise
                wait = self._backoff * (2**attempt) * random.uniform(0.5, 1.5)
                if exc.retry_after is not None:
                    if exc.retry_after > self._max_retry_wait:
                        raise
                    wait = max(wait, exc.retry_after)
                attempt += 1
                log.info("pax8 %s %s: %s; retry %d in %.1fs", method, path, exc, attempt, wait)
                self._sleep(wait)

    def _get(self, path: str, model: type[ModelT], *, simulation: bool, **params: Any) -> ModelT:
        response = self._request(
            "GET", path, simulation=simulation, idempotent=True, params=_clean(params)
        )
        return _parse(response, model)

    def _post(
        self, path: str, model: type[ModelT], *, simulation: bool, body: Any = None
    ) -> ModelT:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        response = self._request("POST", path, simulation=simulation, idempotent=False, **kwargs)
        return _parse(response, model)

    def pages(
        self,
        path: str,
        model: type[ModelT],
        *,
        simulation: bool,
        size: int | None = None,
        **params: Any,
    ) -> Iterator[Page[ModelT]]:
        """Every page of a list operation, from page 0, stopping on the last page.

        Defensive about odd page info. Always stops on an empty page, and when a server
        ignoring ``page`` repeats the previous page (compared by content, not ids: an id
        is optional in some schemas). When the answer carries totals, the next page is
        asked for while ``totalPages`` or ``totalElements`` says more follow, so one stale
        or zero total, or a silently clamped page size, does not cut the listing short
        (a total that lies high costs one empty page). With no totals (both 0), a full
        page means "ask for the next one". Never more than ``MAX_PAGES`` calls.
        """
        size = size or self._page_size
        page_model = Page[model]  # type: ignore[valid-type]
        previous: list[Any] | None = None
        seen = 0
        for number in range(MAX_PAGES):
            page = self._get(
                path, page_model, simulation=simulation, page=number, size=size, **params
            )
            if not page.content or page.content == previous:
                return
            yield page
            seen += len(page.content)
            info = page.page
            if info.total_pages > 0 or info.total_elements > 0:
                more = info.total_pages > number + 1 or info.total_elements > seen
            else:
                # The server may use a smaller size than asked (a cap); it says which.
                expected = info.size if 0 < info.size < size else size
                more = len(page.content) >= expected
            if not more:
                return
            previous = page.content

    def _list(
        self, path: str, model: type[ModelT], *, simulation: bool, **params: Any
    ) -> Iterator[ModelT]:
        for page in self.pages(path, model, simulation=simulation, **params):
            yield from page.content

    # -- provisioners and webhooks -----------------------------------------------------

    def list_provisioners(self, *, simulation: bool = False) -> Iterator[Provisioner]:
        """``GET /provisioners``: every provisioner of the credential set."""
        return self._list("/provisioners", Provisioner, simulation=simulation)

    def get_provisioner(self, provisioner_id: str, *, simulation: bool = False) -> Provisioner:
        """``GET /provisioners/{id}``."""
        return self._get(
            f"/provisioners/{_seg(provisioner_id)}", Provisioner, simulation=simulation
        )

    def provisioner(self, *, simulation: bool = False) -> Provisioner:
        """The credential set's (first) provisioner."""
        for provisioner in self.list_provisioners(simulation=simulation):
            return provisioner
        raise Pax8Error("Pax8 lists no provisioner for these credentials")

    def list_webhooks(self, provisioner_id: str, *, simulation: bool = False) -> Iterator[Webhook]:
        """``GET /provisioners/{id}/webhooks``: every webhook configuration."""
        return self._list(
            f"/provisioners/{_seg(provisioner_id)}/webhooks", Webhook, simulation=simulation
        )

    def get_webhook(
        self, provisioner_id: str, webhook_id: str, *, simulation: bool = False
    ) -> Webhook:
        """``GET /provisioners/{id}/webhooks/{webhookId}``."""
        return self._get(
            f"/provisioners/{_seg(provisioner_id)}/webhooks/{_seg(webhook_id)}",
            Webhook,
            simulation=simulation,
        )

    def get_latest_webhook(self, provisioner_id: str, *, simulation: bool = False) -> Webhook:
        """``GET /provisioners/{id}/webhooks/latest``: the configuration Pax8 delivers to."""
        return self._get(
            f"/provisioners/{_seg(provisioner_id)}/webhooks/latest", Webhook, simulation=simulation
        )

    def create_webhook(
        self,
        provisioner_id: str,
        url: str,
        *,
        header: str | None = None,
        simulation: bool = False,
    ) -> CreatedWebhook:
        """``POST /provisioners/{id}/webhooks``: the answer carries the credential, once."""
        body = WebhookCreate(
            url=url, shared_secret=SharedSecretCreate(header=header) if header else None
        )
        return self._post(
            f"/provisioners/{_seg(provisioner_id)}/webhooks",
            CreatedWebhook,
            simulation=simulation,
            body=to_wire(body),
        )

    # -- simulation --------------------------------------------------------------------

    def create_order_event(self, event: dict[str, Any] | None = None) -> ProvisionTestingOrderEvent:
        """``POST /provision-simulations/order-events`` (simulation credentials only).

        ``event`` is a partial order event; Pax8 fills in everything left out and
        delivers the webhook to the latest simulation webhook configuration.
        """
        return self._post(
            "/provision-simulations/order-events",
            ProvisionTestingOrderEvent,
            simulation=True,
            body=event or {},
        )

    # -- provision requests ------------------------------------------------------------

    def list_provision_requests(self, *, simulation: bool = False) -> Iterator[ProvisionRequest]:
        """``GET /provision-requests``."""
        return self._list("/provision-requests", ProvisionRequest, simulation=simulation)

    def list_unfulfilled(
        self, *, simulation: bool = False, size: int | None = None
    ) -> Iterator[ProvisionRequest]:
        """``GET /provision-requests/unfulfilled``: what still waits for a result."""
        return self._list(
            "/provision-requests/unfulfilled", ProvisionRequest, simulation=simulation, size=size
        )

    def get_provision_request(
        self, request_id: str, *, simulation: bool = False
    ) -> ProvisionRequest:
        """``GET /provision-requests/{id}``."""
        return self._get(
            f"/provision-requests/{_seg(request_id)}", ProvisionRequest, simulation=simulation
        )

    # -- details -----------------------------------------------------------------------

    def list_details(
        self, request_id: str, *, simulation: bool = False
    ) -> Iterator[ProvisionDetail]:
        """``GET /provision-requests/{id}/details``."""
        return self._list(
            f"/provision-requests/{_seg(request_id)}/details",
            ProvisionDetail,
            simulation=simulation,
        )

    def get_detail(
        self, request_id: str, detail_id: str, *, simulation: bool = False
    ) -> ProvisionDetail:
        """``GET /provision-requests/{id}/details/{detailId}``."""
        return self._get(
            f"/provision-requests/{_seg(request_id)}/details/{_seg(detail_id)}",
            ProvisionDetail,
            simulation=simulation,
        )

    def get_latest_detail(self, request_id: str, *, simulation: bool = False) -> ProvisionDetail:
        """``GET /provision-requests/{id}/details/latest``."""
        return self._get(
            f"/provision-requests/{_seg(request_id)}/details/latest",
            ProvisionDetail,
            simulation=simulation,
        )

    # -- attempts ----------------------------------------------------------------------

    def list_attempts(
        self, request_id: str, *, detail_id: str | None = None, simulation: bool = False
    ) -> Iterator[ProvisionAttempt]:
        """``GET /provision-requests/{id}/attempts``, optionally for one detail."""
        return self._list(
            f"/provision-requests/{_seg(request_id)}/attempts",
            ProvisionAttempt,
            simulation=simulation,
            provisionDetailId=detail_id,
        )

    def get_attempt(
        self, request_id: str, attempt_id: str, *, simulation: bool = False
    ) -> ProvisionAttempt:
        """``GET /provision-requests/{id}/attempts/{attemptId}``."""
        return self._get(
            f"/provision-requests/{_seg(request_id)}/attempts/{_seg(attempt_id)}",
            ProvisionAttempt,
            simulation=simulation,
        )

    def get_latest_attempt(self, request_id: str, *, simulation: bool = False) -> ProvisionAttempt:
        """``GET /provision-requests/{id}/attempts/latest``."""
        return self._get(
            f"/provision-requests/{_seg(request_id)}/attempts/latest",
            ProvisionAttempt,
            simulation=simulation,
        )

    def create_attempt(self, request_id: str, *, simulation: bool = False) -> ProvisionAttempt:
        """``POST /provision-requests/{id}/attempts``: a new, already Acknowledged attempt."""
        return self._post(
            f"/provision-requests/{_seg(request_id)}/attempts",
            ProvisionAttempt,
            simulation=simulation,
        )

    # -- results -----------------------------------------------------------------------

    def list_results(
        self, request_id: str, *, attempt_id: str | None = None, simulation: bool = False
    ) -> Iterator[ProvisionResult]:
        """``GET /provision-requests/{id}/results``, optionally for one attempt."""
        return self._list(
            f"/provision-requests/{_seg(request_id)}/results",
            ProvisionResult,
            simulation=simulation,
            provisionAttemptId=attempt_id,
        )

    def get_result(
        self, request_id: str, result_id: str, *, simulation: bool = False
    ) -> ProvisionResult:
        """``GET /provision-requests/{id}/results/{resultId}``."""
        return self._get(
            f"/provision-requests/{_seg(request_id)}/results/{_seg(result_id)}",
            ProvisionResult,
            simulation=simulation,
        )

    def get_latest_result(self, request_id: str, *, simulation: bool = False) -> ProvisionResult:
        """``GET /provision-requests/{id}/results/latest``."""
        return self._get(
            f"/provision-requests/{_seg(request_id)}/results/latest",
            ProvisionResult,
            simulation=simulation,
        )

    def create_result(
        self, request_id: str, result: ProvisionResult, *, simulation: bool = False
    ) -> ProvisionResult:
        """``POST /provision-requests/{id}/results``: one result per acknowledged attempt."""
        return self._post(
            f"/provision-requests/{_seg(request_id)}/results",
            ProvisionResult,
            simulation=simulation,
            body=to_wire(result),
        )


def _seg(value: str) -> str:
    """One path segment, percent-encoded: an id is data, never structure (``../`` or ``?``
    in an id must not change which URL is called)."""
    return quote(str(value), safe="")


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _parse(response: httpx.Response, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A 2xx we cannot read is Pax8's problem of the moment, not a reason to give up.
        raise ServerError(
            f"Pax8 answered {response.request.method} {response.request.url.path} with an "
            f"unreadable {model.__name__}: {exc.errors()[0].get('msg')}",
            response.status_code,
        ) from exc
