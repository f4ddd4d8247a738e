"""The Pax8 client's own logic against ``httpx.MockTransport``: paging, tokens, retries,
the error tree, and the models' strictness and tolerance. No process, no socket.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

import pax8.client
import pax8.holdoff
from pax8 import (
    AuthenticationError,
    ClientError,
    Conflict,
    Credentials,
    CredentialsMissing,
    HeldOff,
    NotFound,
    Pax8Client,
    Pax8Error,
    PermanentError,
    ProvisionNotification,
    ProvisionRequest,
    ProvisionResult,
    RateLimited,
    RequestType,
    ResultStatus,
    ServerError,
    Timeout,
    TokenCache,
    TransientError,
    TransportError,
)
from pax8.errors import error_from_response, error_from_transport, parse_retry_after
from pax8.models import (
    ERROR_MESSAGE_MAX,
    BillingTerm,
    ProvisionAttempt,
    ProvisionDetail,
    Provisioner,
    to_wire,
)

API = "https://pax8.test/v2"
TOKEN_URL = "https://pax8.test/v1/token"

Responder = Callable[[httpx.Request], httpx.Response]


class FakePax8:
    """A scriptable Pax8: a token endpoint that counts, and an API answered by ``api``.

    ``api`` is a callable or a list of responses/exceptions used in order (the last one
    repeats). Every request is recorded.
    """

    def __init__(self, api: Responder | list[Any] | None = None, expires_in: Any = 86400) -> None:
        self.api = api if api is not None else [httpx.Response(200, json={})]
        self.expires_in = expires_in
        self.token_bodies: list[dict[str, Any]] = []
        self.api_requests: list[httpx.Request] = []
        self.token_answers: list[httpx.Response | Exception] = []

    @property
    def token_calls(self) -> int:
        return len(self.token_bodies)

    def tokens_sent(self) -> list[str]:
        return [r.headers["Authorization"].removeprefix("Bearer ") for r in self.api_requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_bodies.append(json.loads(request.content))
            if self.token_answers:
                answer = self.token_answers.pop(0)
                if isinstance(answer, Exception):
                    raise answer
                return answer
            body: dict[str, Any] = {"access_token": f"token-{self.token_calls}"}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        self.api_requests.append(request)
        if callable(self.api):
            return self.api(request)
        index = min(len(self.api_requests), len(self.api)) - 1
        answer = self.api[index]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer


class Sleeps(list[float]):
    """An injected ``sleep`` that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., Pax8Client]]:
    made: list[Pax8Client] = []

    def make(fake: FakePax8, **options: Any) -> Pax8Client:
        options.setdefault("production", Credentials("prod-id", "prod-secret"))
        options.setdefault("retries", 2)
        options.setdefault("backoff", 0.01)
        # The client's clock advances by what it slept (a hold-off after a 429 ends then).
        options.setdefault("clock", lambda: sum(sleeps))
        client = Pax8Client(
            API, TOKEN_URL, transport=httpx.MockTransport(fake), sleep=sleeps, **options
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def provisioner(n: int, with_id: bool = True) -> dict[str, Any]:
    item: dict[str, Any] = {"vendorId": "vendor-1", "name": f"provisioner {n}"}
    if with_id:
        item["id"] = f"prov-{n}"
    return item


def envelope(content: list[Any], number: int, size: int, elements: int, pages: int) -> Any:
    return {
        "content": content,
        "page": {"size": size, "totalElements": elements, "totalPages": pages, "number": number},
    }


def paged_server(
    items: list[dict[str, Any]],
    page_info: Callable[[int, int, list[Any]], dict[str, int]] | None = None,
    serve_size: int | None = None,
) -> Callable[[httpx.Request], httpx.Response]:
    """Serve ``items`` in pages, as asked (or ``serve_size`` per page), with honest totals
    unless ``page_info(number, size, content)`` says otherwise."""

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        size = serve_size or int(request.url.params["size"])
        content = items[number * size : (number + 1) * size]
        info = {
            "size": size,
            "totalElements": len(items),
            "totalPages": -(-len(items) // size),
            "number": number,
        }
        if page_info is not None:
            info = page_info(number, size, content)
        return httpx.Response(200, json={"content": content, "page": info})

    return answer


def pages_asked(fake: FakePax8) -> list[int]:
    return [int(r.url.params["page"]) for r in fake.api_requests]


def names(found: list[Provisioner]) -> list[str]:
    return [p.name for p in found]


# -- paging ------------------------------------------------------------------------------


def test_paging_reads_every_page_and_stops_on_the_short_last_one(
    make_client: Callable[..., Pax8Client],
) -> None:
    items = [provisioner(n) for n in range(25)]
    fake = FakePax8(paged_server(items))
    client = make_client(fake, page_size=10)
    found = list(client.list_provisioners())
    assert [p.id for p in found] == [f"prov-{n}" for n in range(25)]
    assert pages_asked(fake) == [0, 1, 2]
    assert {r.url.params["size"] for r in fake.api_requests} == {"10"}


def test_paging_an_exactly_full_last_page_needs_no_extra_call(
    make_client: Callable[..., Pax8Client],
) -> None:
    fake = FakePax8(paged_server([provisioner(n) for n in range(20)]))
    found = list(make_client(fake, page_size=10).list_provisioners())
    assert len(found) == 20
    assert pages_asked(fake) == [0, 1]


def test_paging_an_empty_list_is_one_call(make_client: Callable[..., Pax8Client]) -> None:
    fake = FakePax8([httpx.Response(200, json=envelope([], 0, 10, 0, 0))])
    assert list(make_client(fake).list_provisioners()) == []
    assert pages_asked(fake) == [0]


def test_paging_a_server_ignoring_page_is_read_once(
    make_client: Callable[..., Pax8Client],
) -> None:
    first = [provisioner(n) for n in range(10)]
    # It always answers page 0 and claims three pages: the repeat ends the listing.
    fake = FakePax8([httpx.Response(200, json=envelope(first, 0, 10, 25, 3))])
    found = list(make_client(fake, page_size=10).list_provisioners())
    assert [p.id for p in found] == [f"prov-{n}" for n in range(10)]
    assert pages_asked(fake) == [0, 1]


def test_paging_repeat_detection_compares_content_not_missing_ids(
    make_client: Callable[..., Pax8Client],
) -> None:
    # Provisioner.id is optional: pages of id-less items are still different pages.
    items = [provisioner(n, with_id=False) for n in range(5)]
    fake = FakePax8(
        paged_server(items, lambda number, size, content: envelope([], number, 0, 0, 0)["page"])
    )
    found = list(make_client(fake, page_size=2).list_provisioners())
    assert names(found) == [f"provisioner {n}" for n in range(5)]
    assert pages_asked(fake) == [0, 1, 2]


def test_paging_total_pages_zero_with_content_keeps_reading_full_pages(
    make_client: Callable[..., Pax8Client],
) -> None:
    items = [provisioner(n) for n in range(25)]
    fake = FakePax8(
        paged_server(items, lambda number, size, content: {
            "size": size, "totalElements": 0, "totalPages": 0, "number": number
        })
    )  # fmt: skip
    found = list(make_client(fake, page_size=10).list_provisioners())
    assert len(found) == 25
    assert pages_asked(fake) == [0, 1, 2]


def test_paging_total_pages_zero_but_total_elements_given(
    make_client: Callable[..., Pax8Client],
) -> None:
    items = [provisioner(n) for n in range(20)]
    fake = FakePax8(
        paged_server(items, lambda number, size, content: {
            "size": size, "totalElements": 20, "totalPages": 0, "number": number
        })
    )  # fmt: skip
    assert len(list(make_client(fake, page_size=10).list_provisioners())) == 20
    assert pages_asked(fake) == [0, 1]


def test_paging_total_pages_lying_high_ends_on_the_empty_page(
    make_client: Callable[..., Pax8Client],
) -> None:
    items = [provisioner(n) for n in range(20)]
    fake = FakePax8(
        paged_server(items, lambda number, size, content: {
            "size": size, "totalElements": 50, "totalPages": 5, "number": number
        })
    )  # fmt: skip
    assert len(list(make_client(fake, page_size=10).list_provisioners())) == 20
    assert pages_asked(fake) == [0, 1, 2]


def test_paging_a_silently_clamped_page_size_does_not_cut_the_listing(
    make_client: Callable[..., Pax8Client],
) -> None:
    # The server serves 5 per page but claims the 10 asked for; the totals are honest.
    items = [provisioner(n) for n in range(12)]
    fake = FakePax8(
        paged_server(items, serve_size=5, page_info=lambda number, size, content: {
            "size": 10, "totalElements": 12, "totalPages": 2, "number": number
        })
    )  # fmt: skip
    found = list(make_client(fake, page_size=10).list_provisioners())
    assert [p.id for p in found] == [f"prov-{n}" for n in range(12)]
    assert pages_asked(fake) == [0, 1, 2]


def test_paging_trusts_our_page_count_not_the_number_field(
    make_client: Callable[..., Pax8Client],
) -> None:
    items = [provisioner(n) for n in range(25)]
    fake = FakePax8(
        paged_server(items, lambda number, size, content: {
            "size": size, "totalElements": 25, "totalPages": 3, "number": 0
        })
    )  # fmt: skip
    assert len(list(make_client(fake, page_size=10).list_provisioners())) == 25
    assert pages_asked(fake) == [0, 1, 2]


def test_paging_a_capped_size_without_totals_uses_the_size_the_server_reports(
    make_client: Callable[..., Pax8Client],
) -> None:
    items = [provisioner(n) for n in range(7)]
    fake = FakePax8(
        paged_server(items, serve_size=3, page_info=lambda number, size, content: {
            "size": 3, "totalElements": 0, "totalPages": 0, "number": number
        })
    )  # fmt: skip
    assert len(list(make_client(fake, page_size=100).list_provisioners())) == 7
    assert pages_asked(fake) == [0, 1, 2]


def test_paging_is_bounded(
    make_client: Callable[..., Pax8Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pax8.client, "MAX_PAGES", 4)

    def endless(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        return httpx.Response(200, json=envelope([provisioner(number)], number, 1, 10**9, 10**9))

    fake = FakePax8(endless)
    assert len(list(make_client(fake).list_provisioners())) == 4
    assert pages_asked(fake) == [0, 1, 2, 3]


def test_paging_sends_filters_and_leaves_out_absent_ones(
    make_client: Callable[..., Pax8Client],
) -> None:
    fake = FakePax8([httpx.Response(200, json=envelope([], 0, 10, 0, 0))])
    client = make_client(fake, page_size=7)
    list(client.list_attempts("req-1", detail_id="det-1"))
    list(client.list_attempts("req-1"))
    list(client.list_results("req-1", attempt_id="att-1"))
    list(client.list_unfulfilled(size=3))
    with_detail, without, results, unfulfilled = fake.api_requests
    assert with_detail.url.path == "/v2/provision-requests/req-1/attempts"
    assert dict(with_detail.url.params) == {"page": "0", "size": "7", "provisionDetailId": "det-1"}
    assert dict(without.url.params) == {"page": "0", "size": "7"}
    assert results.url.path == "/v2/provision-requests/req-1/results"
    assert results.url.params["provisionAttemptId"] == "att-1"
    assert unfulfilled.url.path == "/v2/provision-requests/unfulfilled"
    assert unfulfilled.url.params["size"] == "3"


def test_pages_yields_page_info(make_client: Callable[..., Pax8Client]) -> None:
    fake = FakePax8(paged_server([provisioner(n) for n in range(5)]))
    pages = list(make_client(fake).pages("/provisioners", Provisioner, simulation=False, size=2))
    assert [p.page.number for p in pages] == [0, 1, 2]
    assert [len(p.content) for p in pages] == [2, 2, 1]
    assert pages[0].page.total_elements == 5


# -- tokens ------------------------------------------------------------------------------


def test_token_is_fetched_once_and_sent_on_every_call(
    make_client: Callable[..., Pax8Client],
) -> None:
    fake = FakePax8([httpx.Response(200, json=provisioner(1))])
    client = make_client(fake)
    for _ in range(3):
        client.get_provisioner("prov-1")
    assert fake.token_calls == 1
    assert fake.tokens_sent() == ["token-1"] * 3
    assert fake.token_bodies[0] == {
        "client_id": "prod-id",
        "client_secret": "prod-secret",
        "audience": "api://provisioning",
        "grant_type": "client_credentials",
    }


def test_each_environment_uses_its_own_credentials(
    make_client: Callable[..., Pax8Client],
) -> None:
    fake = FakePax8([httpx.Response(200, json=provisioner(1))])
    client = make_client(fake, simulation=Credentials("sim-id", "sim-secret"))
    client.get_provisioner("p", simulation=True)
    client.get_provisioner("p")
    assert [b["client_id"] for b in fake.token_bodies] == ["sim-id", "prod-id"]
    assert fake.tokens_sent() == ["token-1", "token-2"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_cache(fake: FakePax8, clock: Clock) -> tuple[TokenCache, httpx.Client]:
    http = httpx.Client(transport=httpx.MockTransport(fake))
    return TokenCache(http, TOKEN_URL, Credentials("id", "secret"), clock=clock), http


def test_token_is_refreshed_before_it_expires() -> None:
    clock, fake = Clock(), FakePax8(expires_in=100)
    cache, http = token_cache(fake, clock)
    with http:
        assert cache.token() == "token-1"
        clock.now += 89.9  # 10 % of the life (10 s) is the margin
        assert cache.token() == "token-1"
        clock.now += 0.1
        assert cache.token() == "token-2"
        assert cache.token() == "token-2"
    assert fake.token_calls == 2
    assert cache.fetches == 2


def test_a_short_lived_token_keeps_at_least_a_second_of_margin() -> None:
    clock, fake = Clock(), FakePax8(expires_in=5)
    cache, http = token_cache(fake, clock)
    with http:
        cache.token()
        clock.now += 3.9
        assert cache.token() == "token-1"
        clock.now += 0.1  # 1 s left: refresh
        assert cache.token() == "token-2"


def test_a_token_living_one_second_is_not_refetched_before_every_call() -> None:
    clock, fake = Clock(), FakePax8(expires_in=1)
    cache, http = token_cache(fake, clock)
    with http:
        assert [cache.token() for _ in range(5)] == ["token-1"] * 5
        clock.now += 0.5
        assert cache.token() == "token-2"
    assert fake.token_calls == 2


def test_a_token_without_expires_in_lives_a_day() -> None:
    clock, fake = Clock(), FakePax8(expires_in=None)
    cache, http = token_cache(fake, clock)
    with http:
        cache.token()
        clock.now += 86400 * 0.9 - 1
        assert cache.token() == "token-1"
        clock.now += 1
        assert cache.token() == "token-2"


def test_invalidate_forgets_only_the_token_it_names() -> None:
    clock, fake = Clock(), FakePax8()
    cache, http = token_cache(fake, clock)
    with http:
        first = cache.token()
        cache.invalidate("some-older-token")
        assert cache.token() == first
        cache.invalidate(first)
        assert cache.token() == "token-2"


def test_refused_credentials_are_an_authentication_error_without_the_secret(
    make_client: Callable[..., Pax8Client],
) -> None:
    fake = FakePax8()
    fake.token_answers = [httpx.Response(401, json={"error": "access_denied"})]
    client = make_client(fake, production=Credentials("prod-id", "hunter2"))
    with pytest.raises(AuthenticationError) as caught:
        client.get_provisioner("p")
    assert caught.value.status_code == 401
    assert caught.value.body == {"error": "access_denied"}
    assert "prod-id" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(Credentials("prod-id", "hunter2"))
    assert fake.token_calls == 1
    assert fake.api_requests == []


def test_a_token_endpoint_outage_is_transient_and_retried_on_reads(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8([httpx.Response(200, json=provisioner(1))])
    fake.token_answers = [httpx.Response(503), httpx.ConnectError("refused")]
    client = make_client(fake)
    assert client.get_provisioner("p").name == "provisioner 1"
    assert fake.token_calls == 3
    assert len(sleeps) == 2


def test_an_unreadable_token_answer_is_a_server_error(
    make_client: Callable[..., Pax8Client],
) -> None:
    fake = FakePax8()
    fake.token_answers = [httpx.Response(200, json={"token": "no access_token key"})]
    with pytest.raises(ServerError, match="token answer unreadable"):
        make_client(fake, retries=0).get_provisioner("p")


def test_one_401_refreshes_the_token_once_and_succeeds(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8([httpx.Response(401), httpx.Response(200, json=provisioner(1))])
    client = make_client(fake)
    assert client.get_provisioner("p").id == "prov-1"
    assert fake.token_calls == 2
    assert fake.tokens_sent() == ["token-1", "token-2"]
    assert sleeps == []  # a refresh is not a retry


def test_a_second_401_is_an_authentication_error_not_a_loop(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8([httpx.Response(401, json={"message": "expired bearer token"})])
    client = make_client(fake)
    with pytest.raises(AuthenticationError) as caught:
        client.get_provisioner("p")
    assert caught.value.status_code == 401
    assert caught.value.body == {"message": "expired bearer token"}
    assert "after a fresh token" in str(caught.value)
    assert fake.token_calls == 2
    assert len(fake.api_requests) == 2
    assert client.calls == 2
    assert sleeps == []


def test_a_401_on_a_post_is_sent_again_once_with_a_fresh_token(
    make_client: Callable[..., Pax8Client],
) -> None:
    created = {"id": "att-2", "status": "Acknowledged"}
    fake = FakePax8([httpx.Response(401), httpx.Response(200, json=created)])
    assert make_client(fake).create_attempt("req-1").id == "att-2"
    assert [r.method for r in fake.api_requests] == ["POST", "POST"]
    assert fake.tokens_sent() == ["token-1", "token-2"]


def test_a_403_is_not_refreshed(make_client: Callable[..., Pax8Client]) -> None:
    fake = FakePax8([httpx.Response(403, json={"message": "order events need simulation"})])
    client = make_client(fake, simulation=Credentials("sim", "sim"))
    with pytest.raises(AuthenticationError) as caught:
        client.create_order_event()
    assert caught.value.status_code == 403
    assert fake.token_calls == 1
    assert len(fake.api_requests) == 1


def test_missing_credentials_make_no_call(make_client: Callable[..., Pax8Client]) -> None:
    fake = FakePax8()
    client = make_client(fake)
    with pytest.raises(CredentialsMissing, match="SIMULATION"):
        client.create_order_event({})
    with pytest.raises(CredentialsMissing):
        list(client.list_unfulfilled(simulation=True))
    assert client.has_credentials(False) and not client.has_credentials(True)
    assert fake.token_calls == 0 and fake.api_requests == []


# -- retries -----------------------------------------------------------------------------


def test_reads_are_retried_on_server_errors_with_backoff(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8(
        [httpx.Response(503), httpx.Response(502), httpx.Response(200, json=provisioner(1))]
    )
    client = make_client(fake, retries=2, backoff=0.5)
    assert client.get_provisioner("p").id == "prov-1"
    assert len(fake.api_requests) == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.75 and 0.5 <= sleeps[1] <= 1.5  # jittered, doubling


def test_reads_give_up_after_the_retry_budget(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8([httpx.Response(500, json={"message": "boom"})])
    with pytest.raises(ServerError) as caught:
        make_client(fake, retries=3).get_provisioner("p")
    assert caught.value.status_code == 500
    assert "boom" in str(caught.value)
    assert len(fake.api_requests) == 4
    assert len(sleeps) == 3


def test_retry_after_is_honoured_on_reads(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8(
        [
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(200, json=provisioner(1)),
        ]
    )
    make_client(fake, backoff=0.001).get_provisioner("p")
    assert sleeps == [7.0, 2.0]


def test_a_retry_after_beyond_the_cap_is_raised_at_once(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8([httpx.Response(429, headers={"Retry-After": "120"})])
    with pytest.raises(RateLimited) as caught:
        make_client(fake, max_retry_wait=30).get_provisioner("p")
    assert caught.value.retry_after == 120.0
    assert len(fake.api_requests) == 1
    assert sleeps == []


def test_read_timeouts_are_retried_then_raised_as_timeout(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8([httpx.ReadTimeout("slow")])
    with pytest.raises(Timeout, match="timed out on GET /provisioners/p"):
        make_client(fake, retries=2).get_provisioner("p")
    assert len(fake.api_requests) == 3
    assert len(sleeps) == 2


def test_a_refused_connection_is_a_transport_error_not_a_timeout(
    make_client: Callable[..., Pax8Client],
) -> None:
    fake = FakePax8([httpx.ConnectError("Connection refused")])
    with pytest.raises(TransportError) as caught:
        make_client(fake, retries=1).get_provisioner("p")
    assert not isinstance(caught.value, Timeout)
    assert "Connection refused" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(fake.api_requests) == 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(503), ServerError),
        (httpx.Response(429, headers={"Retry-After": "1"}), RateLimited),
        (httpx.ReadTimeout("slow"), Timeout),
        (httpx.ConnectError("refused"), TransportError),
    ],
)
def test_posts_are_never_retried(
    make_client: Callable[..., Pax8Client],
    sleeps: Sleeps,
    answer: httpx.Response | Exception,
    error: type[Pax8Error],
) -> None:
    fake = FakePax8([answer, httpx.Response(200, json={"status": "Success"})])
    result = ProvisionResult(provision_attempt_id="att-1", status=ResultStatus.SUCCESS)
    with pytest.raises(error):
        make_client(fake, retries=5).create_result("req-1", result)
    assert len(fake.api_requests) == 1
    assert sleeps == []


def test_client_errors_are_not_retried(
    make_client: Callable[..., Pax8Client], sleeps: Sleeps
) -> None:
    fake = FakePax8([httpx.Response(404, json={"message": "provision request x not found"})])
    with pytest.raises(NotFound):
        make_client(fake, retries=5).get_provision_request("x")
    assert len(fake.api_requests) == 1
    assert sleeps == []


def test_an_unreadable_success_is_a_server_error(make_client: Callable[..., Pax8Client]) -> None:
    fake = FakePax8([httpx.Response(200, json={"unexpected": True})])
    with pytest.raises(ServerError, match="unreadable Provisioner") as caught:
        make_client(fake).get_provisioner("p")
    assert caught.value.status_code == 200


def test_the_client_closes_its_pool() -> None:
    with Pax8Client(API, TOKEN_URL, transport=httpx.MockTransport(FakePax8())) as client:
        pass
    assert client._http.is_closed


# -- the error tree ----------------------------------------------------------------------


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    request = httpx.Request("POST", f"{API}/provision-requests/r/results")
    if isinstance(body, dict | list):
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=body or "", headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ClientError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFound),
        (409, Conflict),
        (422, ClientError),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_error_from_response_maps_each_status(status: int, kind: type[Pax8Error]) -> None:
    body = {"message": f"pax8 says {status}", "status": status}
    error = error_from_response(response(status, body))
    assert type(error) is kind
    assert f"Pax8 answered {status} to POST /v2/provision-requests/r/results" in str(error)
    assert f"pax8 says {status}" in str(error)
    if isinstance(error, ClientError):
        assert error.status_code == status
        assert error.body == body
        assert isinstance(error, PermanentError)
    else:
        assert isinstance(error, TransientError)
    if isinstance(error, ServerError):
        assert error.status_code == status


def test_error_bodies_that_are_not_json_or_empty() -> None:
    text = error_from_response(response(400, "plain words from a proxy"))
    assert isinstance(text, ClientError)
    assert text.body == "plain words from a proxy"
    assert "plain words from a proxy" in str(text)
    empty = error_from_response(response(502))
    assert "Bad Gateway" in str(empty)
    oauth = error_from_response(response(400, {"error": "invalid_grant"}))
    assert "invalid_grant" in str(oauth)


def test_retry_after_is_read_from_429_and_5xx() -> None:
    limited = error_from_response(response(429, {}, {"Retry-After": "12"}))
    assert isinstance(limited, RateLimited) and limited.retry_after == 12.0
    busy = error_from_response(response(503, {}, {"Retry-After": "3"}))
    assert isinstance(busy, ServerError) and busy.retry_after == 3.0
    plain = error_from_response(response(429))
    assert isinstance(plain, RateLimited) and plain.retry_after is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_error_from_transport_maps_timeouts_apart() -> None:
    request = httpx.Request("GET", API)
    assert (
        type(error_from_transport(httpx.ConnectTimeout("t", request=request), "GET /")) is Timeout
    )
    assert type(error_from_transport(httpx.ReadError("r", request=request), "GET /")) is (
        TransportError
    )


ERRORS = [
    Pax8Error("base"),
    TransientError("transient"),
    TransportError("unreachable"),
    Timeout("timed out"),
    RateLimited("slow down", 7.5),
    RateLimited("slow down, no hint"),
    ServerError("down", 503, 2.0),
    PermanentError("permanent"),
    ClientError("bad", 400, {"message": "bad", "details": {"field": "status"}}),
    AuthenticationError("who", 401, {"message": "expired"}),
    NotFound("gone", 404, {"message": "gone"}),
    Conflict("twice", 409, {"message": "twice", "details": {"resultId": "r-1"}}),
    CredentialsMissing("no simulation credentials"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__ + ":" + str(e))
def test_every_error_survives_pickling_with_its_state(error: Pax8Error) -> None:
    for copied in (pickle.loads(pickle.dumps(error)), copy.deepcopy(error)):
        assert type(copied) is type(error)
        assert str(copied) == str(error)
        assert copied.message == error.message
        assert copied.args == error.args
        for name in ("status_code", "body", "retry_after"):
            assert getattr(copied, name, "absent") == getattr(error, name, "absent")


def test_error_tree_shape() -> None:
    assert issubclass(Timeout, TransportError)
    for transient in (TransportError, RateLimited, ServerError):
        assert issubclass(transient, TransientError)
    for permanent in (ClientError, CredentialsMissing):
        assert issubclass(permanent, PermanentError)
    for client in (AuthenticationError, NotFound, Conflict):
        assert issubclass(client, ClientError)


# -- models: strict where Pax8 is strict -------------------------------------------------


def test_result_status_must_be_success_or_fail() -> None:
    assert ProvisionResult(status="Success").status is ResultStatus.SUCCESS
    with pytest.raises(ValidationError):
        ProvisionResult(status="Succeeded")
    with pytest.raises(ValidationError):
        ProvisionResult.model_validate({})


def test_fail_cuts_the_message_to_500_characters() -> None:
    long = ProvisionResult.fail("att-1", "x" * 2000, metadata={"k": "v"})
    assert long.error_message is not None
    assert len(long.error_message) == ERROR_MESSAGE_MAX == 500
    assert long.error_message.endswith("…")
    assert long.status is ResultStatus.FAIL
    exact = ProvisionResult.fail("att-1", "y" * 500)
    assert exact.error_message == "y" * 500
    blank = ProvisionResult.fail("att-1", "   ")
    assert blank.error_message and "could not provision" in blank.error_message
    assert to_wire(long) == {
        "provisionAttemptId": "att-1",
        "status": "Fail",
        "errorMessage": long.error_message,
        "metadata": {"k": "v"},
    }


def test_a_message_over_500_characters_is_refused_when_built_directly() -> None:
    with pytest.raises(ValidationError):
        ProvisionResult(status="Fail", error_message="z" * 501)


@pytest.mark.parametrize("value", ["sub-1", "A_b-9", "0", "x" * 300])
def test_external_ids_matching_the_pattern(value: str) -> None:
    result = ProvisionResult(status="Success", external_provisioner_subscription_id=value)
    assert to_wire(result)["externalProvisionerSubscriptionId"] == value


@pytest.mark.parametrize("value", ["", "a b", "a.b", "sub/1", "abc\n", "ü", "id:1"])
@pytest.mark.parametrize(
    "field",
    [
        "external_provisioner_subscription_id",
        "external_provisioner_partner_id",
        "external_provisioner_company_id",
        "external_provisioner_partner_enrollment_id",
    ],
)
def test_external_ids_off_the_pattern_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        ProvisionResult(status="Success", **{field: value})


# -- models: tolerant where Pax8 is loose ------------------------------------------------


def test_misspelled_compay_domain_is_read_and_written_right() -> None:
    request = ProvisionRequest.model_validate_json('{"id": "r", "compayDomain": "a.example"}')
    assert request.company_domain == "a.example"
    assert to_wire(request)["companyDomain"] == "a.example"
    assert "compayDomain" not in to_wire(request)
    both = ProvisionRequest.model_validate(
        {"id": "r", "companyDomain": "right", "compayDomain": "x"}
    )
    assert both.company_domain == "right"


def test_unknown_fields_are_kept_and_sent_back() -> None:
    request = ProvisionRequest.model_validate_json(
        '{"id": "r", "brandNewField": {"x": 1}, "partnerAddress": {"city": "Denver", "zip4": "1"}}'
    )
    assert request.model_extra == {"brandNewField": {"x": 1}}
    wire = to_wire(request)
    assert wire["brandNewField"] == {"x": 1}
    assert wire["partnerAddress"] == {"city": "Denver", "zip4": "1"}


def test_nanosecond_timestamps_are_read() -> None:
    attempt = ProvisionAttempt.model_validate_json(
        '{"id": "a", "createdDate": "2025-08-05T20:01:22.600612546Z"}'
    )
    assert attempt.created_date is not None
    assert (attempt.created_date.year, attempt.created_date.microsecond) == (2025, 600612)
    assert attempt.created_date.utcoffset() is not None


def test_ids_need_not_be_uuids() -> None:
    detail = ProvisionDetail.model_validate(
        {"id": "not-a-uuid", "provisionRequestId": "0b858eb9-13b5-468d-850d-19219", "details": {}}
    )
    assert detail.id == "not-a-uuid"
    assert detail.provision_request_id == "0b858eb9-13b5-468d-850d-19219"


def test_request_types_known_become_the_enum_unknown_stay_strings() -> None:
    known = ProvisionRequest.model_validate_json('{"id": "r", "type": "TrialConvert"}')
    assert known.type is RequestType.TRIAL_CONVERT
    assert known.request_type is RequestType.TRIAL_CONVERT
    assert RequestType.TRIAL_CONVERT.snake == "trial_convert"
    unknown = ProvisionRequest.model_validate_json('{"id": "r", "type": "Suspend"}')
    assert unknown.type == "Suspend" and not isinstance(unknown.type, RequestType)
    assert unknown.request_type is None
    assert to_wire(unknown)["type"] == "Suspend"
    assert ProvisionRequest(id="r").request_type is None


def test_billing_terms_known_and_unknown() -> None:
    known = ProvisionRequest.model_validate_json('{"id": "r", "billingTerm": "One-Time"}')
    assert known.billing_term is BillingTerm.ONE_TIME
    odd = ProvisionRequest.model_validate_json('{"id": "r", "billingTerm": "Fortnightly"}')
    assert odd.billing_term == "Fortnightly"


def test_deprecated_commitment_fields_and_new_units_are_read() -> None:
    old = ProvisionRequest.model_validate_json('{"id": "r", "commitmentTermMonths": 12}')
    assert old.term_months == 12
    new = ProvisionRequest.model_validate_json(
        '{"id": "r", "commitmentTermMonths": 12, "commitment": {"term": {"months": 24},'
        ' "volume": {"unitOfMeasure": "Seats", "minAmount": 1}}}'
    )
    assert new.term_months == 24
    assert new.commitment is not None and new.commitment.volume is not None
    assert new.commitment.volume.unit_of_measure == "Seats"


# Pax8's order-event answer from its simulation guide, as printed there (nanosecond
# dates, a deprecated term field, an old commitment end date).
PAX8_EXAMPLE = """
{
    "provisionRequest": {
        "id": "0b858eb9-13b5-468d-850d-192192d1359b",
        "partnerId": "1427aef1-3c96-4ee2-ba2c-2802a2e15da1",
        "partnerName": "Super Partner",
        "partnerDomain": "super.partner",
        "partnerAddress": {"street": "123 Fake Street", "street2": "Unit 3", "city": "Best City",
                           "postcode": "11111", "country": "US", "stateOrProvince": "Colorado"},
        "partnerEnrollmentId": "42aeb583-e0b5-41bf-a5f9-76fce7e6dff6",
        "companyId": "d49d261f-b802-41bb-ba73-0dbdd22ddcdd",
        "companyName": "Great Company",
        "companyDomain": "great.company",
        "productId": "75015627-3163-4972-aaae-3e9930e67f81",
        "productName": "Best Product",
        "quantity": 7,
        "subscriptionId": "9f4a34a9-37ca-439e-a89c-2013f42b49e2",
        "type": "NetNew",
        "createdDate": "2025-08-05T20:01:22.600597346Z",
        "commitmentTermMonths": 12,
        "commitmentTermEndDate": "2025-04-08T19:54:03Z",
        "commitment": {"term": {"months": 12, "endDate": "2025-04-08T19:54:03Z"},
                       "volume": {"minAmount": 150, "maxAmount": 250, "unitOfMeasure": "Points",
                                  "months": 1}},
        "billingTerm": "Monthly"
    },
    "provisionDetail": {
        "id": "fd0f9e2f-1f7a-4281-8f0b-2102945cc5a8",
        "provisionRequestId": "0b858eb9-13b5-468d-850d-192192d1359b",
        "details": {"someKey": "someValue"},
        "createdDate": "2025-08-05T20:01:22.600605046Z"
    },
    "provisionAttempt": {
        "id": "e9577538-733d-4335-9a97-649de1fa45b1",
        "provisionDetailId": "fd0f9e2f-1f7a-4281-8f0b-2102945cc5a8",
        "webhookId": "a3ee5fab-a1ee-4035-99b1-210a8c729269",
        "status": "Acknowledged",
        "createdDate": "2025-08-05T20:01:22.600612546Z"
    },
    "isSimulation": true
}
"""


def test_pax8s_own_simulation_example_parses() -> None:
    notice = ProvisionNotification.model_validate_json(PAX8_EXAMPLE)
    assert notice.is_simulation is True
    request = notice.provision_request
    assert request.type is RequestType.NET_NEW
    assert request.billing_term is BillingTerm.MONTHLY
    assert request.quantity == 7
    assert request.term_months == 12
    assert request.partner_address is not None
    assert request.partner_address.state_or_province == "Colorado"
    assert notice.provision_detail.details == {"someKey": "someValue"}
    assert notice.provision_attempt.status == "Acknowledged"
    assert notice.provision_attempt.webhook_id == "a3ee5fab-a1ee-4035-99b1-210a8c729269"


def test_package_exports_every_exception_class_it_names_lazily() -> None:
    """``pax8/__init__`` lists the error names by hand (to import httpx only on use)."""
    import inspect

    import pax8
    import pax8.errors

    exported_errors = {name for name in pax8.__all__ if name in pax8.errors.__all__}
    error_classes = {
        name
        for name in pax8.errors.__all__
        if inspect.isclass(getattr(pax8.errors, name))
        and issubclass(getattr(pax8.errors, name), Exception)
    }
    assert exported_errors == error_classes
    for name in pax8.__all__:
        assert getattr(pax8, name) is not None


def a_result() -> ProvisionResult:
    return ProvisionResult(provision_attempt_id="att-1", status=ResultStatus.SUCCESS)


def test_a_429_holds_every_call_of_the_client_off_until_its_retry_after(
    make_client: Callable[..., Pax8Client],
) -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "5"})]
    fake = FakePax8(lambda request: answers[0])
    clock = Clock()
    client = make_client(fake, clock=clock)
    with pytest.raises(RateLimited) as first:
        client.create_result("r-1", a_result())
    assert not isinstance(first.value, HeldOff)
    # Every other call for the next 5 s is refused here, unsent, with the time left.
    for n, step in enumerate((0.0, 1.0, 3.5)):
        clock.now += step
        with pytest.raises(HeldOff) as held:
            client.create_result(f"r-{n + 2}", a_result())
        assert held.value.retry_after == pytest.approx(5.0 - (0.0, 1.0, 4.5)[n])
        assert "not sent" in str(held.value)
    assert len(fake.api_requests) == 1


def test_after_the_hold_one_call_goes_first_and_the_others_wait_for_its_answer(
    make_client: Callable[..., Pax8Client],
) -> None:
    clock = Clock()
    client: Pax8Client
    inner: list[BaseException] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if len(fake.api_requests) == 1:
            return httpx.Response(429, headers={"Retry-After": "2"})
        if len(fake.api_requests) == 2:
            # While the first call after the hold is on its way, another is held off.
            with pytest.raises(HeldOff) as held:
                client.create_result("r-other", a_result())
            inner.append(held.value)
        return httpx.Response(200, json={"provisionAttemptId": "att-1", "status": "Success"})

    fake = FakePax8(answer)
    client = make_client(fake, clock=clock)
    with pytest.raises(RateLimited):
        client.create_result("r-1", a_result())
    clock.now += 2.0
    assert client.create_result("r-2", a_result()).status is ResultStatus.SUCCESS
    assert len(inner) == 1 and "first call after the hold-off" in str(inner[0])
    assert inner[0].retry_after == pytest.approx(1.0)  # type: ignore[attr-defined]
    # Answered: everything goes through again.
    assert client.create_result("r-3", a_result()).status is ResultStatus.SUCCESS
    assert len(fake.api_requests) == 3  # the 429, the first after the hold, r-3: r-other unsent


def test_a_429_without_retry_after_holds_off_a_second_and_a_long_one_is_capped(
    make_client: Callable[..., Pax8Client],
) -> None:
    clock = Clock()
    fake = FakePax8([httpx.Response(429), httpx.Response(429, headers={"Retry-After": "3600"})])
    client = make_client(fake, clock=clock, max_retry_wait=30.0)
    with pytest.raises(RateLimited):
        client.create_result("r-1", a_result())
    assert client.held_for() == pytest.approx(pax8.holdoff.HOLD_OFF_SECONDS)
    clock.now += pax8.holdoff.HOLD_OFF_SECONDS
    with pytest.raises(RateLimited):
        client.create_result("r-2", a_result())
    assert client.held_for() == pytest.approx(30.0)
