"""The Pax8 client against the sandbox running as a real process on loopback.

Every one of the 21 operations, paging over several pages, token expiry and the 401 path,
simulation vs production isolation, and each injected fault mapped to its exception. The
sandbox's call counters (``/sandbox/calls``) say how many HTTP calls the client really
made, so "retried twice" and "not retried" are checked on the server's side of the wire.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pax8 import (
    AuthenticationError,
    ClientError,
    Conflict,
    Credentials,
    CredentialsMissing,
    NotFound,
    Pax8Client,
    Pax8Error,
    ProvisionResult,
    RateLimited,
    RequestType,
    ResultStatus,
    ServerError,
    Timeout,
    TransportError,
)
from pax8.models import ProvisionRequest
from tests.support.procs import free_port, wait_until
from tests.support.sandbox import SandboxHandle, WebhookListener, start_sandbox

TOKEN = "POST /v1/token"
OPERATIONS = {
    "GET /v2/provisioners",
    "GET /v2/provisioners/{id}",
    "GET /v2/provisioners/{id}/webhooks",
    "GET /v2/provisioners/{id}/webhooks/{webhookId}",
    "GET /v2/provisioners/{id}/webhooks/latest",
    "POST /v2/provisioners/{id}/webhooks",
    "POST /v2/provision-simulations/order-events",
    "GET /v2/provision-requests",
    "GET /v2/provision-requests/unfulfilled",
    "GET /v2/provision-requests/{id}",
    "GET /v2/provision-requests/{id}/details",
    "GET /v2/provision-requests/{id}/details/{detailId}",
    "GET /v2/provision-requests/{id}/details/latest",
    "GET /v2/provision-requests/{id}/attempts",
    "GET /v2/provision-requests/{id}/attempts/{attemptId}",
    "GET /v2/provision-requests/{id}/attempts/latest",
    "POST /v2/provision-requests/{id}/attempts",
    "GET /v2/provision-requests/{id}/results",
    "GET /v2/provision-requests/{id}/results/{resultId}",
    "GET /v2/provision-requests/{id}/results/latest",
    "POST /v2/provision-requests/{id}/results",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(tmp_path_factory.mktemp("pax8-client"))
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def clean(sandbox: SandboxHandle) -> None:
    sandbox.reset(webhooks=True)


class Sleeps(list[float]):
    """The client's ``sleep``: recorded, not slept (the backoff is checked, not waited)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


ClientFactory = Callable[..., Pax8Client]


@pytest.fixture
def make_client(sandbox: SandboxHandle) -> Iterator[ClientFactory]:
    """Pax8 clients on the sandbox (both credential sets unless told), closed after the test."""
    made: list[Pax8Client] = []

    def make(handle: SandboxHandle | None = None, **options: Any) -> Pax8Client:
        target = handle or sandbox
        options.setdefault("production", Credentials(*target.client_credentials()))
        options.setdefault("simulation", Credentials(*target.client_credentials(True)))
        options.setdefault("timeout", 5.0)
        options.setdefault("retries", 2)
        options.setdefault("backoff", 0.01)
        options.setdefault("page_size", 10)
        options.setdefault("sleep", Sleeps())
        api_url = options.pop("api_url", target.api_url)
        token_url = options.pop("token_url", target.token_url)
        client = Pax8Client(api_url, token_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: ClientFactory) -> Pax8Client:
    return make_client()


@pytest.fixture
def listener() -> Iterator[WebhookListener]:
    with WebhookListener() as server:
        yield server


def counted(sandbox: SandboxHandle, operation: str, environment: str | None = None) -> int:
    calls = sandbox.calls()
    table = calls["by_operation"] if environment is None else calls["by_environment"][environment]
    return int(table.get(operation, 0))


def acknowledged_request(sandbox: SandboxHandle) -> dict[str, Any]:
    """A production request whose only attempt is Acknowledged: ``{id, detailId, attemptId}``."""
    return sandbox.bulk(1, attempt_status="Acknowledged")[0]


def success(attempt_id: str, **fields: Any) -> ProvisionResult:
    return ProvisionResult(provision_attempt_id=attempt_id, status=ResultStatus.SUCCESS, **fields)


# -- every operation -----------------------------------------------------------------------


def _provisioners_and_webhooks(sandbox: SandboxHandle, client: Pax8Client, url: str) -> None:
    production = list(client.list_provisioners())
    simulation = list(client.list_provisioners(simulation=True))
    assert [p.id for p in production] == [sandbox.provisioner_id()]
    assert [p.id for p in simulation] == [sandbox.provisioner_id(simulation=True)]
    prov_id = sandbox.provisioner_id()
    assert client.get_provisioner(prov_id) == production[0]
    assert production[0].vendor_id and production[0].name

    first = client.create_webhook(prov_id, url)
    second = client.create_webhook(prov_id, url + "?v=2", header="X-Vendor-Key")
    assert first.shared_secret.header == "pax8ApiTokenV1"  # Pax8's default header
    assert second.shared_secret.header == "X-Vendor-Key"
    assert first.shared_secret.credential != second.shared_secret.credential
    listed = list(client.list_webhooks(prov_id))
    assert [w.id for w in listed] == [first.id, second.id]
    # The credential is shown once; later reads mask it.
    assert listed[0].shared_secret.credential != first.shared_secret.credential
    assert listed[0].shared_secret.credential.endswith(first.shared_secret.credential[-4:])
    assert first.id is not None
    assert client.get_webhook(prov_id, first.id).url == url
    latest = client.get_latest_webhook(prov_id)
    assert (latest.id, latest.url, latest.shared_secret.header) == (
        second.id,
        url + "?v=2",
        "X-Vendor-Key",
    )


def _simulated_order(sandbox: SandboxHandle, client: Pax8Client, listener: WebhookListener) -> None:
    sim_prov = sandbox.provisioner_id(simulation=True)
    hook = client.create_webhook(sim_prov, listener.url, simulation=True)
    event = client.create_order_event(
        {
            "provisionRequest": {"type": "Renewal", "compayDomain": "typo.example"},
            "provisionDetail": {"details": {"adminEmail": "admin@typo.example"}},
        }
    )
    assert event.is_simulation is True
    assert event.provision_request is not None and event.provision_detail is not None
    assert event.provision_attempt is not None
    request, detail, attempt = (
        event.provision_request,
        event.provision_detail,
        event.provision_attempt,
    )
    assert request.type is RequestType.RENEWAL
    assert request.company_domain == "typo.example"
    assert detail.details == {"adminEmail": "admin@typo.example"}
    # Delivered before the answer, to the latest simulation webhook, with its credential.
    assert attempt.status == "Acknowledged"
    assert attempt.webhook_id == hook.id
    (received,) = listener.received
    assert received.headers[hook.shared_secret.header] == hook.shared_secret.credential
    assert received.json()["provisionRequest"]["id"] == request.id

    assert client.get_provision_request(request.id, simulation=True).id == request.id
    assert [d.id for d in client.list_details(request.id, simulation=True)] == [detail.id]
    assert client.get_latest_detail(request.id, simulation=True).id == detail.id
    assert [r.id for r in client.list_unfulfilled(simulation=True)] == [request.id]

    result = client.create_result(
        request.id,
        ProvisionResult.fail(attempt.id, "The admin email is already in use; use another one."),
        simulation=True,
    )
    assert result.status is ResultStatus.FAIL and result.id is not None
    assert client.get_latest_result(request.id, simulation=True).id == result.id
    assert list(client.list_unfulfilled(simulation=True)) == []
    # Nothing of it is visible to production credentials.
    assert [r.id for r in client.list_provision_requests(simulation=True)] == [request.id]
    assert list(client.list_provision_requests()) == []


def _production_request(sandbox: SandboxHandle, client: Pax8Client) -> None:
    ids = acknowledged_request(sandbox)
    request_id, first_detail, first_attempt = ids["id"], ids["detailId"], ids["attemptId"]
    request = client.get_provision_request(request_id)
    assert request.type is RequestType.NET_NEW
    assert request.subscription_id is not None

    # The partner fixes checkout data: a second detail (not delivered here).
    second = sandbox.new_detail(request_id, {"seats": 5}, deliver=False)
    second_detail = second["provisionDetail"]["id"]
    assert [d.id for d in client.list_details(request_id)] == [first_detail, second_detail]
    assert client.get_detail(request_id, first_detail).id == first_detail
    assert client.get_latest_detail(request_id).details == {"seats": 5}

    made = client.create_attempt(request_id)  # a new, already Acknowledged attempt
    assert made.status == "Acknowledged"
    assert made.provision_detail_id == second_detail
    everything = [a.id for a in client.list_attempts(request_id)]
    assert everything[0] == first_attempt and everything[-1] == made.id and len(everything) == 3
    assert [a.id for a in client.list_attempts(request_id, detail_id=first_detail)] == [
        first_attempt
    ]
    assert client.get_attempt(request_id, made.id).provision_detail_id == second_detail
    assert client.get_latest_attempt(request_id).id == made.id
    assert request_id in [r.id for r in client.list_unfulfilled()]

    created = client.create_result(
        request_id,
        success(
            made.id,
            external_provisioner_subscription_id="sub-42",
            external_provisioner_company_id="company_7",
            metadata={"plan": "gold"},
        ),
    )
    assert created.id is not None
    fetched = client.get_result(request_id, created.id)
    assert fetched == created
    assert (fetched.external_provisioner_subscription_id, fetched.metadata) == (
        "sub-42",
        {"plan": "gold"},
    )
    assert client.get_latest_result(request_id).id == created.id
    assert [r.id for r in client.list_results(request_id, attempt_id=made.id)] == [created.id]
    assert list(client.list_results(request_id, attempt_id=first_attempt)) == []
    assert [r.id for r in client.list_results(request_id)] == [created.id]
    assert request_id not in [r.id for r in client.list_unfulfilled()]
    assert [r.id for r in client.list_provision_requests()] == [request_id]


def test_every_operation_through_the_client(
    sandbox: SandboxHandle, client: Pax8Client, listener: WebhookListener
) -> None:
    _provisioners_and_webhooks(sandbox, client, listener.url)
    _simulated_order(sandbox, client, listener)
    _production_request(sandbox, client)
    calls = sandbox.calls()["by_operation"]
    assert set(calls) == OPERATIONS | {TOKEN}
    assert calls[TOKEN] == 2  # one token per credential set, reused for every call


# -- paging ----------------------------------------------------------------------------


def test_paging_over_several_pages(sandbox: SandboxHandle, make_client: ClientFactory) -> None:
    made = sandbox.bulk(25)
    sandbox.bulk(3, environment="simulation")
    client = make_client(page_size=10)
    sandbox.reset_calls()

    listed = list(client.list_provision_requests())
    assert [r.id for r in listed] == [m["id"] for m in made]
    assert counted(sandbox, "GET /v2/provision-requests", "production") == 3

    pages = list(
        client.pages("/provision-requests/unfulfilled", ProvisionRequest, simulation=False)
    )
    assert [p.page.number for p in pages] == [0, 1, 2]
    assert [len(p.content) for p in pages] == [10, 10, 5]
    assert pages[0].page.total_elements == 25 and pages[0].page.total_pages == 3
    assert counted(sandbox, "GET /v2/provision-requests/unfulfilled") == 3

    # A page size that divides the total exactly: no extra call for an empty page.
    assert len(list(client.list_unfulfilled(size=5))) == 25
    assert counted(sandbox, "GET /v2/provision-requests/unfulfilled") == 3 + 5
    assert len(list(client.list_provision_requests(simulation=True))) == 3


# -- tokens ----------------------------------------------------------------------------


def test_a_short_lived_token_is_renewed_before_it_expires(
    tmp_path: Path, make_client: ClientFactory
) -> None:
    with start_sandbox(tmp_path, token_ttl=2) as short:
        client = make_client(short)
        prov_id = short.provisioner_id()
        cache = client.tokens(False)
        client.get_provisioner(prov_id)
        assert cache.fetches == 1
        reads = [1]

        def renewed() -> bool:
            client.get_provisioner(prov_id)
            reads[0] += 1
            return cache.fetches == 2

        wait_until(renewed, timeout=10, interval=0.05, message="no new token was fetched")
        calls = short.calls()["by_operation"]
        assert calls[TOKEN] == 2
        # Every read was answered at the first try: the token never expired in use.
        assert calls["GET /v2/provisioners/{id}"] == reads[0] == client.calls


def test_an_expired_token_costs_one_401_and_one_refresh(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    prov_id = sandbox.provisioner_id()
    client.get_provisioner(prov_id)
    assert sandbox.expire_tokens() >= 1
    assert client.get_provisioner(prov_id).id == prov_id
    calls = sandbox.calls()["by_operation"]
    assert calls["GET /v2/provisioners/{id}"] == 3  # ok, 401, ok
    assert calls[TOKEN] == 2
    assert client.tokens(False).fetches == 2


def test_a_second_401_is_an_authentication_error_not_a_loop(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    sandbox.add_fault(method="GET", path="/v2/provisioners", action="error", status=401, times=2)
    with pytest.raises(AuthenticationError) as caught:
        list(client.list_provisioners())
    assert caught.value.status_code == 401
    assert caught.value.body["message"] == "injected fault: HTTP 401"
    calls = sandbox.calls()["by_operation"]
    assert calls["GET /v2/provisioners"] == 2
    assert calls[TOKEN] == 2
    assert [(r["remaining"], r["fired"]) for r in sandbox.faults()] == [(0, 2)]
    # The client is not stuck: the next call fetches a token again and goes through.
    assert len(list(client.list_provisioners())) == 1


def test_wrong_credentials_are_an_authentication_error(
    sandbox: SandboxHandle, make_client: ClientFactory
) -> None:
    client = make_client(production=Credentials("sandbox-client", "wrong-secret"))
    with pytest.raises(AuthenticationError) as caught:
        list(client.list_provisioners())
    assert caught.value.status_code == 401
    assert "wrong-secret" not in str(caught.value)
    assert sandbox.calls()["by_operation"] == {TOKEN: 1}


# -- simulation vs production ------------------------------------------------------------


def test_a_simulated_request_is_invisible_to_production_credentials(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    event = client.create_order_event()  # no webhook configured: the attempt fails
    assert event.provision_request is not None and event.provision_attempt is not None
    request_id = event.provision_request.id
    assert event.provision_attempt.status == "Failed"
    with pytest.raises(NotFound) as caught:
        client.get_provision_request(request_id)
    assert request_id in caught.value.body["message"]
    with pytest.raises(NotFound):
        client.create_result(request_id, success(event.provision_attempt.id))
    assert client.get_provision_request(request_id, simulation=True).id == request_id
    assert list(client.list_unfulfilled()) == []
    assert [r.id for r in client.list_unfulfilled(simulation=True)] == [request_id]


def test_a_production_request_is_invisible_to_simulation_credentials(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    ids = acknowledged_request(sandbox)
    with pytest.raises(NotFound):
        client.get_latest_attempt(ids["id"], simulation=True)
    with pytest.raises(NotFound):
        client.get_provisioner(sandbox.provisioner_id(), simulation=True)
    assert client.get_latest_attempt(ids["id"]).id == ids["attemptId"]


def test_order_events_need_simulation_credentials(
    sandbox: SandboxHandle, make_client: ClientFactory
) -> None:
    production_only = make_client(simulation=None)
    with pytest.raises(CredentialsMissing):
        production_only.create_order_event()
    assert sandbox.calls()["total"] == 0  # refused before any call

    # Production credentials configured as if they were the simulation set: Pax8 says 403.
    mixed_up = make_client(simulation=Credentials(*sandbox.client_credentials()))
    with pytest.raises(AuthenticationError) as caught:
        mixed_up.create_order_event()
    assert caught.value.status_code == 403
    calls = sandbox.calls()["by_operation"]
    assert calls == {TOKEN: 1, "POST /v2/provision-simulations/order-events": 1}
    assert sandbox.requests() == []


# -- injected faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ClientError),
        (403, AuthenticationError),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
    ],
)
def test_each_injected_status_maps_to_its_exception(
    sandbox: SandboxHandle, make_client: ClientFactory, status: int, error: type[Pax8Error]
) -> None:
    rule = sandbox.add_fault(
        method="GET", path="/v2/provision-requests", action="error", status=status
    )
    client = make_client(retries=0)
    with pytest.raises(error) as caught:
        list(client.list_provision_requests())
    assert type(caught.value) is error
    assert f"Pax8 answered {status} to GET /v2/provision-requests" in str(caught.value)
    if isinstance(caught.value, ClientError):
        assert caught.value.status_code == status
        assert caught.value.body == {
            "message": f"injected fault: HTTP {status}",
            "status": status,
            "details": {"fault": rule["id"]},
        }


def test_a_500_is_a_server_error_after_the_bounded_read_retries(
    sandbox: SandboxHandle, make_client: ClientFactory
) -> None:
    ids = acknowledged_request(sandbox)
    sandbox.add_fault(method="GET", path="/v2/provision-requests/*", action="error", status=500)
    sleeps = Sleeps()
    client = make_client(retries=2, sleep=sleeps)
    with pytest.raises(ServerError) as caught:
        client.get_provision_request(ids["id"])
    assert caught.value.status_code == 500
    assert counted(sandbox, "GET /v2/provision-requests/{id}") == 3
    assert len(sleeps) == 2
    assert sandbox.faults()[0]["fired"] == 3


def test_a_503_with_retry_after_is_waited_out_on_reads(
    sandbox: SandboxHandle, make_client: ClientFactory
) -> None:
    sandbox.add_fault(
        method="GET", path="/v2/provisioners", action="error", status=503, retry_after=3, times=1
    )
    sleeps = Sleeps()
    client = make_client(sleep=sleeps)
    assert len(list(client.list_provisioners())) == 1
    assert sleeps == [3.0]
    assert counted(sandbox, "GET /v2/provisioners") == 2


def test_a_429_on_a_post_is_rate_limited_with_retry_after_and_not_retried(
    sandbox: SandboxHandle, make_client: ClientFactory
) -> None:
    ids = acknowledged_request(sandbox)
    sandbox.add_fault(
        method="POST",
        path="/v2/provision-requests/*/results",
        action="error",
        status=429,
        retry_after=7,
    )
    sleeps = Sleeps()
    client = make_client(retries=5, sleep=sleeps)
    with pytest.raises(RateLimited) as caught:
        client.create_result(ids["id"], success(ids["attemptId"]))
    assert caught.value.retry_after == 7.0
    assert counted(sandbox, "POST /v2/provision-requests/{id}/results") == 1
    assert sleeps == []
    assert sandbox.results() == []


def test_a_500_after_the_work_leaves_a_result_that_a_repeat_finds_as_conflict(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    ids = acknowledged_request(sandbox)
    sandbox.add_fault(
        method="POST", path="/v2/provision-requests/*/results", action="error_after", times=1
    )
    with pytest.raises(ServerError):
        client.create_result(ids["id"], success(ids["attemptId"]))
    stored = list(client.list_results(ids["id"], attempt_id=ids["attemptId"]))
    assert len(stored) == 1
    with pytest.raises(Conflict) as caught:
        client.create_result(ids["id"], success(ids["attemptId"]))
    assert caught.value.body["details"]["resultId"] == stored[0].id


def test_a_slow_read_is_a_timeout(sandbox: SandboxHandle, make_client: ClientFactory) -> None:
    sandbox.add_fault(method="GET", path="/v2/provisioners", action="delay", seconds=1.0, times=2)
    sleeps = Sleeps()
    client = make_client(timeout=0.25, retries=1, sleep=sleeps)
    with pytest.raises(Timeout):
        list(client.list_provisioners())
    assert len(sleeps) == 1
    # The sandbox counts a call when it answers, after the delay.
    wait_until(lambda: counted(sandbox, "GET /v2/provisioners") == 2, timeout=5)


def test_a_slow_write_is_a_timeout_though_pax8_may_have_acted(
    sandbox: SandboxHandle, make_client: ClientFactory
) -> None:
    ids = acknowledged_request(sandbox)
    sandbox.add_fault(
        method="POST", path="/v2/provision-requests/*/attempts", action="delay_after", seconds=1.0
    )
    client = make_client(timeout=0.25, retries=3)
    with pytest.raises(Timeout):
        client.create_attempt(ids["id"])
    assert len(list(client.list_attempts(ids["id"]))) == 2  # the attempt was made
    assert counted(sandbox, "POST /v2/provision-requests/{id}/attempts") == 1


def test_a_closed_port_is_a_transport_error(
    sandbox: SandboxHandle, make_client: ClientFactory
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    sleeps = Sleeps()
    api_down = make_client(api_url=f"{closed}/v2", retries=1, sleep=sleeps)
    with pytest.raises(TransportError) as caught:
        list(api_down.list_provisioners())
    assert not isinstance(caught.value, Timeout)
    assert "unreachable on GET /provisioners" in str(caught.value)
    assert len(sleeps) == 1
    assert api_down.tokens(False).fetches == 1  # the token came from the live sandbox

    token_down = make_client(token_url=f"{closed}/v1/token", retries=0)
    with pytest.raises(TransportError, match="/v1/token"):
        token_down.get_provisioner(sandbox.provisioner_id())


def test_unknown_ids_are_not_found(sandbox: SandboxHandle, client: Pax8Client) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFound) as caught:
        client.get_provision_request(unknown)
    assert caught.value.status_code == 404
    assert caught.value.body == {"message": f"provision request {unknown} not found", "status": 404}
    ids = acknowledged_request(sandbox)
    with pytest.raises(NotFound):
        client.get_detail(ids["id"], unknown)
    with pytest.raises(NotFound):
        client.get_latest_result(ids["id"])  # no result yet
    with pytest.raises(NotFound):
        client.get_webhook(sandbox.provisioner_id(), unknown)
    assert counted(sandbox, "GET /v2/provision-requests/{id}") == 1  # 404s are not retried


def test_a_second_result_for_the_same_attempt_is_a_conflict(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    ids = acknowledged_request(sandbox)
    first = client.create_result(ids["id"], success(ids["attemptId"]))
    with pytest.raises(Conflict) as caught:
        client.create_result(ids["id"], ProvisionResult.fail(ids["attemptId"], "changed my mind"))
    assert caught.value.status_code == 409
    assert caught.value.body["details"] == {
        "field": "provisionAttemptId",
        "resultId": first.id,
    }
    assert counted(sandbox, "POST /v2/provision-requests/{id}/results") == 2
    assert [r["status"] for r in sandbox.results(request_id=ids["id"])] == ["Success"]


def test_a_bad_external_id_sent_raw_is_a_client_error_with_pax8s_body(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    ids = acknowledged_request(sandbox)
    raw = ProvisionResult.model_construct(
        provision_attempt_id=ids["attemptId"],
        status=ResultStatus.SUCCESS,
        external_provisioner_subscription_id="sub 42!",  # the model would refuse this
    )
    with pytest.raises(ClientError) as caught:
        client.create_result(ids["id"], raw)
    assert type(caught.value) is ClientError
    assert caught.value.status_code == 400
    assert caught.value.body["details"] == {"field": "externalProvisionerSubscriptionId"}
    assert "externalProvisionerSubscriptionId" in str(caught.value)
    assert sandbox.results() == []


def test_a_result_for_an_unacknowledged_attempt_is_a_client_error(
    sandbox: SandboxHandle, client: Pax8Client
) -> None:
    ids = sandbox.bulk(1, attempt_status="Failed")[0]
    with pytest.raises(ClientError) as caught:
        client.create_result(ids["id"], success(ids["attemptId"]))
    assert type(caught.value) is ClientError
    assert caught.value.status_code == 400
    assert caught.value.body["details"] == {"field": "provisionAttemptId"}
    assert "not Acknowledged" in caught.value.body["message"]
