"""The sandbox (a local Pax8) as a real process on loopback, driven with raw httpx.

One sandbox serves the module (reset before each test) with fast retries; a few tests start
their own with other options. Webhooks go to a ``WebhookListener`` in this process.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import ROOT, wait_until
from tests.support.sandbox import AUDIENCE, SandboxHandle, WebhookListener, start_sandbox

RETRY_DELAY = 0.1
MAX_RETRIES = 3
ADDRESS_KEYS = {"street", "street2", "city", "postcode", "country", "stateOrProvince"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(
        tmp_path_factory.mktemp("sandbox"),
        retry_delay=RETRY_DELAY,
        max_retries=MAX_RETRIES,
        delivery_timeout=2.0,
    )
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def clean(sandbox: SandboxHandle) -> None:
    sandbox.reset(webhooks=True)


@pytest.fixture
def listener() -> Iterator[WebhookListener]:
    with WebhookListener() as server:
        yield server


@pytest.fixture
def prod(sandbox: SandboxHandle, clean: None) -> httpx.Client:
    return sandbox.api()  # after the reset, which expires tokens


@pytest.fixture
def sim(sandbox: SandboxHandle, clean: None) -> httpx.Client:
    return sandbox.api(simulation=True)


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert body["details"]["field"] == field, body
        assert field in body["message"]


def deliver_to(sandbox: SandboxHandle, listener: WebhookListener, env: str = "production") -> str:
    """Point ``env``'s newest webhook configuration at ``listener``; its credential."""
    credential = f"secret-{env}-{uuid.uuid4().hex[:8]}"
    sandbox.create_webhook(listener.url, environment=env, credential=credential)
    return credential


def acknowledged_order(
    sandbox: SandboxHandle, listener: WebhookListener, **order: Any
) -> dict[str, Any]:
    deliver_to(sandbox, listener)
    event = sandbox.order(order=order, wait=True)
    assert event["provisionAttempt"]["status"] == "Acknowledged", event
    return event


# -- tokens ------------------------------------------------------------------------------------


def test_token_endpoint_issues_scoped_bearer_tokens(sandbox: SandboxHandle) -> None:
    response = httpx.post(
        sandbox.token_url,
        json={
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
            "audience": AUDIENCE,
            "grant_type": "client_credentials",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "vendor:provisioning"
    assert body["expires_in"] == 86400
    assert len(body["access_token"]) >= 20

    form = httpx.post(
        sandbox.token_url,
        data={
            "client_id": "sandbox-sim-client",
            "client_secret": "sandbox-sim-secret",
            "audience": AUDIENCE,
        },
    )
    assert form.status_code == 200
    assert form.json()["scope"] == "vendorSimulation:provisioning"
    assert form.json()["access_token"] != body["access_token"]


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "sandbox-client", "client_secret": "wrong", "audience": AUDIENCE},
        {"client_id": "nobody", "client_secret": "sandbox-secret", "audience": AUDIENCE},
        {"client_id": "sandbox-client", "client_secret": "sandbox-secret", "audience": "api://x"},
        {"client_id": "sandbox-client", "client_secret": "sandbox-secret"},
        {
            "client_id": "sandbox-client",
            "client_secret": "sandbox-sim-secret",
            "audience": AUDIENCE,
        },
        {},
    ],
)
def test_token_endpoint_refuses_bad_credentials(
    sandbox: SandboxHandle, body: dict[str, str]
) -> None:
    assert_error(httpx.post(sandbox.token_url, json=body), 401)


def test_api_needs_a_valid_token(sandbox: SandboxHandle) -> None:
    url = f"{sandbox.api_url}/provision-requests"
    assert_error(httpx.get(url), 401)
    assert_error(httpx.get(url, headers={"Authorization": "Bearer not-a-token"}), 401)
    assert_error(httpx.get(url, headers={"Authorization": "Basic abc"}), 401)
    token = sandbox.token()
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, headers=auth).status_code == 200

    assert sandbox.expire_tokens() >= 1
    expired = httpx.get(url, headers=auth)
    assert_error(expired, 401)
    assert "Bearer" in expired.headers["WWW-Authenticate"]
    assert httpx.get(url, headers={"Authorization": f"Bearer {sandbox.token()}"}).status_code == 200


def test_tokens_expire_after_their_ttl(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, token_ttl=1) as short:
        token = short.token()
        assert (
            httpx.post(
                short.token_url,
                json={
                    "client_id": "sandbox-client",
                    "client_secret": "sandbox-secret",
                    "audience": AUDIENCE,
                },
            ).json()["expires_in"]
            == 1
        )
        url = f"{short.api_url}/provisioners"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url, headers=headers).status_code == 200
        wait_until(lambda: httpx.get(url, headers=headers).status_code == 401, timeout=5)


# -- provisioners and webhook configurations ------------------------------------------------


def test_provisioners_are_per_environment(
    sandbox: SandboxHandle, prod: httpx.Client, sim: httpx.Client
) -> None:
    prod_page = prod.get("/provisioners").json()
    sim_page = sim.get("/provisioners").json()
    assert prod_page["page"] == {"size": 10, "totalElements": 1, "totalPages": 1, "number": 0}
    (prod_provisioner,) = prod_page["content"]
    (sim_provisioner,) = sim_page["content"]
    assert prod_provisioner["name"] == "Sandbox Vendor"
    assert sim_provisioner["name"] == "Sandbox Vendor (simulation)"
    assert prod_provisioner["id"] != sim_provisioner["id"]
    assert prod_provisioner["vendorId"] == sim_provisioner["vendorId"]
    assert prod_provisioner["id"] == sandbox.provisioner_id()

    assert prod.get(f"/provisioners/{prod_provisioner['id']}").json() == prod_provisioner
    assert_error(prod.get(f"/provisioners/{sim_provisioner['id']}"), 404)
    assert_error(sim.get(f"/provisioners/{prod_provisioner['id']}/webhooks"), 404)
    assert_error(prod.get("/provisioners/not-a-uuid"), 404)


def test_webhook_configurations_show_the_credential_once(
    sandbox: SandboxHandle, prod: httpx.Client, sim: httpx.Client
) -> None:
    base = f"/provisioners/{sandbox.provisioner_id()}/webhooks"
    assert_error(prod.get(f"{base}/latest"), 404)
    assert prod.get(base).json()["page"]["totalElements"] == 0

    first = prod.post(base, json={"url": "http://127.0.0.1:9/one"})
    assert first.status_code == 200
    created = first.json()
    assert is_uuid(created["id"])
    assert created["url"] == "http://127.0.0.1:9/one"
    assert created["sharedSecret"]["header"] == "pax8ApiTokenV1"
    credential = created["sharedSecret"]["credential"]
    assert len(credential) >= 20
    assert created["createdDate"].endswith("Z")

    second = prod.post(
        base, json={"url": "https://127.0.0.1:9/two", "sharedSecret": {"header": "X-Pax8-Key"}}
    ).json()
    assert second["sharedSecret"]["header"] == "X-Pax8-Key"
    assert second["sharedSecret"]["credential"] != credential

    listed = prod.get(base).json()
    assert [w["id"] for w in listed["content"]] == [created["id"], second["id"]]
    masked = listed["content"][0]["sharedSecret"]["credential"]
    assert masked != credential and masked.endswith(credential[-4:]) and "*" in masked
    one = prod.get(f"{base}/{created['id']}").json()
    assert one["sharedSecret"]["credential"] == masked
    assert prod.get(f"{base}/latest").json()["id"] == second["id"]
    assert_error(prod.get(f"{base}/{uuid.uuid4()}"), 404)

    # Simulation has its own provisioner and configurations.
    sim_base = f"/provisioners/{sandbox.provisioner_id(simulation=True)}/webhooks"
    assert sim.get(sim_base).json()["page"]["totalElements"] == 0
    assert_error(sim.get(f"{base}/latest"), 404)
    # Immutable: no update or delete.
    assert_error(prod.put(f"{base}/{created['id']}", json={"url": "http://x"}), 405)
    assert_error(prod.delete(f"{base}/{created['id']}"), 405)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 5}, "url"),
        ({"url": "http://127.0.0.1/x", "sharedSecret": "abc"}, "sharedSecret"),
        (
            {"url": "http://127.0.0.1/x", "sharedSecret": {"header": "bad header"}},
            "sharedSecret.header",
        ),
    ],
)
def test_webhook_create_validates_its_body(
    sandbox: SandboxHandle, prod: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = prod.post(f"/provisioners/{sandbox.provisioner_id()}/webhooks", json=body)
    assert_error(response, 400, field)


# -- simulated orders --------------------------------------------------------------------------


def test_simulated_order_event_arrives_at_listener_with_secret_and_documented_shape(
    sandbox: SandboxHandle, sim: httpx.Client, listener: WebhookListener
) -> None:
    """A simulated order event posted to the sandbox arrives at a test HTTP listener with the
    secret header and the documented body shape."""
    hook = sim.post(
        f"/provisioners/{sandbox.provisioner_id(simulation=True)}/webhooks",
        json={"url": listener.url},
    ).json()
    credential = hook["sharedSecret"]["credential"]

    response = sim.post("/provision-simulations/order-events", json={})
    assert response.status_code == 200, response.text
    answer = response.json()

    (received,) = listener.wait_for(1)
    assert received.headers["pax8ApiTokenV1"] == credential
    assert received.headers["Content-Type"] == "application/json"
    body = received.json()
    assert set(body) == {"isSimulation", "provisionRequest", "provisionDetail", "provisionAttempt"}
    assert body["isSimulation"] is True

    request = body["provisionRequest"]
    for key in (
        "id",
        "partnerId",
        "partnerEnrollmentId",
        "companyId",
        "productId",
        "subscriptionId",
    ):
        assert is_uuid(request[key]), key
    assert request["partnerName"] == "Example Partner Name"
    assert request["partnerDomain"] == "example.com"
    assert request["companyName"] == "Example Company Name"
    assert request["companyDomain"] == "example.com"
    assert request["productName"] == "Product ABC"
    assert request["quantity"] == 1
    assert request["type"] == "NetNew"
    assert request["billingTerm"] == "Monthly"
    assert request["partnerAddress"] == {
        "street": "123 Partner Ave.",
        "street2": "Unit b",
        "city": "Denver",
        "postcode": "80210",
        "country": "US",
        "stateOrProvince": "CO",
    }
    assert request["companyAddress"]["street"] == "123 Company Ave."
    assert set(request["companyAddress"]) == ADDRESS_KEYS
    assert 1 <= request["commitmentTermMonths"] <= 36
    assert request["commitment"]["term"]["months"] == request["commitmentTermMonths"]
    assert request["commitment"]["term"]["endDate"] == request["commitmentTermEndDate"]
    assert request["createdDate"].endswith("Z")

    detail = body["provisionDetail"]
    assert set(detail) == {"id", "provisionRequestId", "details", "createdDate"}
    assert detail["provisionRequestId"] == request["id"]
    assert detail["details"] == {}

    attempt = body["provisionAttempt"]
    assert set(attempt) == {"id", "provisionDetailId", "webhookId", "status", "createdDate"}
    assert attempt["provisionDetailId"] == detail["id"]
    assert attempt["webhookId"] == hook["id"]

    # The answer is the same order, with the attempt's final status.
    assert answer["provisionRequest"] == request
    assert answer["provisionDetail"] == detail
    assert answer["provisionAttempt"]["id"] == attempt["id"]
    assert answer["provisionAttempt"]["status"] == "Acknowledged"
    assert sim.get(f"/provision-requests/{request['id']}/attempts/latest").json()["status"] == (
        "Acknowledged"
    )


def test_order_event_echoes_given_fields_and_accepts_the_misspelling(
    sandbox: SandboxHandle, sim: httpx.Client, listener: WebhookListener
) -> None:
    deliver_to(sandbox, listener, "simulation")
    order: dict[str, Any] = {
        "provisionRequest": {
            "partnerName": "Super Partner",
            "compayDomain": "great.company",
            "quantity": 7,
            "type": "TrialCreate",
            "trialAutoConverts": "true",
            "commitmentTermMonths": 12,
            "billingTerm": "Annual",
            "subscriptionId": "9F4A34A9-37CA-439E-A89C-2013F42B49E2",
        },
        "provisionDetail": {"details": {"adminEmail": "a@example.com", "seats": {"n": 3}}},
    }
    answer = sim.post("/provision-simulations/order-events", json=order).json()
    request = answer["provisionRequest"]
    assert request["partnerName"] == "Super Partner"
    assert request["companyDomain"] == "great.company"
    assert "compayDomain" not in request
    assert request["quantity"] == 7
    assert request["type"] == "TrialCreate"
    assert request["trialAutoConverts"] is True
    assert request["commitmentTermMonths"] == 12 == request["commitment"]["term"]["months"]
    assert request["billingTerm"] == "Annual"
    assert request["subscriptionId"] == "9f4a34a9-37ca-439e-a89c-2013f42b49e2"
    assert answer["provisionDetail"]["details"] == order["provisionDetail"]["details"]
    assert listener.wait_for(1)[0].json()["provisionRequest"] == request


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provisionRequest": {"quantity": "ten"}}, "provisionRequest.quantity"),
        ({"provisionRequest": {"type": "Upgrade"}}, "provisionRequest.type"),
        ({"provisionRequest": {"partnerId": "p-1"}}, "provisionRequest.partnerId"),
        ({"provisionRequest": {"billingTerm": "Weekly"}}, "provisionRequest.billingTerm"),
        ({"provisionRequest": {"createdDate": "yesterday"}}, "provisionRequest.createdDate"),
        ({"provisionRequest": []}, "provisionRequest"),
        ({"provisionDetail": {"details": ["a"]}}, "provisionDetail.details"),
    ],
)
def test_order_event_rejects_bad_fields(
    sim: httpx.Client, body: dict[str, Any], field: str
) -> None:
    assert_error(sim.post("/provision-simulations/order-events", json=body), 400, field)


def test_order_events_need_simulation_credentials(prod: httpx.Client) -> None:
    assert_error(prod.post("/provision-simulations/order-events", json={}), 403)
    assert prod.get("/provision-requests").json()["page"]["totalElements"] == 0


def test_failed_simulated_delivery_is_not_retried(
    sandbox: SandboxHandle, sim: httpx.Client
) -> None:
    no_hook = sim.post("/provision-simulations/order-events").json()["provisionAttempt"]
    assert no_hook["status"] == "Failed"
    assert no_hook["errorDetail"] == "no webhook configuration"

    with WebhookListener(default_status=500) as failing:
        deliver_to(sandbox, failing, "simulation")
        answer = sim.post("/provision-simulations/order-events", json={}).json()
        assert answer["provisionAttempt"]["status"] == "Failed"
        assert "500" in answer["provisionAttempt"]["errorDetail"]
        # A production chain would have retried within a few retry delays; simulation must not.
        time.sleep(RETRY_DELAY * 5)
        request_id = answer["provisionRequest"]["id"]
        attempts = sim.get(f"/provision-requests/{request_id}/attempts").json()["content"]
        assert len(attempts) == 1
        assert len(failing.received) == 1


# -- reading requests ----------------------------------------------------------------------------


def test_every_read_operation_of_a_request(
    sandbox: SandboxHandle, prod: httpx.Client, listener: WebhookListener
) -> None:
    event = acknowledged_order(sandbox, listener)
    request_id = event["provisionRequest"]["id"]
    detail_id = event["provisionDetail"]["id"]
    first_attempt = event["provisionAttempt"]["id"]
    base = f"/provision-requests/{request_id}"

    assert prod.get(base).json() == event["provisionRequest"]
    assert prod.get(f"{base}/details").json()["content"] == [event["provisionDetail"]]
    assert prod.get(f"{base}/details/{detail_id}").json() == event["provisionDetail"]
    assert prod.get(f"{base}/details/latest").json()["id"] == detail_id

    fail = prod.post(f"{base}/results", json={"status": "Fail", "errorMessage": "bad email"})
    assert fail.status_code == 200
    manual = prod.post(f"{base}/attempts")
    assert manual.status_code == 200
    second_attempt = manual.json()["id"]
    success = prod.post(
        f"{base}/results", json={"status": "Success", "provisionAttemptId": second_attempt}
    ).json()

    attempts = prod.get(f"{base}/attempts").json()
    assert [a["id"] for a in attempts["content"]] == [first_attempt, second_attempt]
    assert prod.get(f"{base}/attempts/{first_attempt}").json()["status"] == "Acknowledged"
    assert prod.get(f"{base}/attempts/latest").json()["id"] == second_attempt
    by_detail = prod.get(f"{base}/attempts", params={"provisionDetailId": detail_id}).json()
    assert by_detail["page"]["totalElements"] == 2
    other_detail = prod.get(f"{base}/attempts", params={"provisionDetailId": str(uuid.uuid4())})
    assert other_detail.json()["page"]["totalElements"] == 0

    results = prod.get(f"{base}/results").json()["content"]
    assert [r["status"] for r in results] == ["Fail", "Success"]
    assert results[0]["provisionAttemptId"] == first_attempt
    assert results[0]["errorMessage"] == "bad email"
    assert prod.get(f"{base}/results/{success['id']}").json() == success
    assert prod.get(f"{base}/results/latest").json() == success
    filtered = prod.get(f"{base}/results", params={"provisionAttemptId": first_attempt}).json()
    assert [r["id"] for r in filtered["content"]] == [fail.json()["id"]]

    for missing in (
        f"/provision-requests/{uuid.uuid4()}",
        "/provision-requests/not-a-uuid",
        f"{base}/details/{uuid.uuid4()}",
        f"{base}/attempts/{uuid.uuid4()}",
        f"{base}/results/{uuid.uuid4()}",
        "/provision-requests/not-a-uuid/attempts/latest",
    ):
        assert_error(prod.get(missing), 404)


def test_latest_routes_404_when_empty(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    (created,) = sandbox.bulk(1, attempt_status=None)
    base = f"/provision-requests/{created['id']}"
    assert created["attemptId"] is None
    assert_error(prod.get(f"{base}/attempts/latest"), 404)
    assert_error(prod.get(f"{base}/results/latest"), 404)
    assert prod.get(f"{base}/details/latest").json()["id"] == created["detailId"]


def test_environments_are_isolated(
    sandbox: SandboxHandle, prod: httpx.Client, sim: httpx.Client
) -> None:
    (sim_request,) = sandbox.bulk(1, environment="simulation")
    (prod_request,) = sandbox.bulk(1, environment="production")
    assert [r["id"] for r in sim.get("/provision-requests").json()["content"]] == [
        sim_request["id"]
    ]
    assert [r["id"] for r in prod.get("/provision-requests/unfulfilled").json()["content"]] == [
        prod_request["id"]
    ]
    assert_error(prod.get(f"/provision-requests/{sim_request['id']}"), 404)
    assert_error(prod.get(f"/provision-requests/{sim_request['id']}/details"), 404)
    assert_error(sim.post(f"/provision-requests/{prod_request['id']}/attempts"), 404)
    assert_error(
        sim.post(f"/provision-requests/{prod_request['id']}/results", json={"status": "Success"}),
        404,
    )


def test_paging_walks_every_request_in_creation_order(
    sandbox: SandboxHandle, prod: httpx.Client
) -> None:
    created = [r["id"] for r in sandbox.bulk(25)]
    seen = []
    for number in range(3):
        body = prod.get("/provision-requests", params={"page": number, "size": 10}).json()
        assert body["page"] == {
            "size": 10,
            "totalElements": 25,
            "totalPages": 3,
            "number": number,
        }
        seen += [r["id"] for r in body["content"]]
    assert seen == created

    beyond = prod.get("/provision-requests", params={"page": 7, "size": 10}).json()
    assert beyond == {
        "content": [],
        "page": {"size": 10, "totalElements": 25, "totalPages": 3, "number": 7},
    }
    default = prod.get("/provision-requests").json()
    assert default["page"]["size"] == 10 and default["page"]["number"] == 0
    assert [r["id"] for r in default["content"]] == created[:10]
    clamped = prod.get("/provision-requests", params={"size": 5000}).json()
    assert clamped["page"]["size"] == 1000 and len(clamped["content"]) == 25

    for params, field in (
        ({"page": -1}, "page"),
        ({"page": "two"}, "page"),
        ({"size": 0}, "size"),
        ({"size": "1.5"}, "size"),
    ):
        assert_error(prod.get("/provision-requests/unfulfilled", params=params), 400, field)


# -- results -----------------------------------------------------------------------------------


def test_one_result_per_attempt(
    sandbox: SandboxHandle, prod: httpx.Client, listener: WebhookListener
) -> None:
    event = acknowledged_order(sandbox, listener)
    request_id, attempt_id = event["provisionRequest"]["id"], event["provisionAttempt"]["id"]
    url = f"/provision-requests/{request_id}/results"
    body = {
        "provisionAttemptId": attempt_id,
        "status": "Success",
        "externalProvisionerSubscriptionId": "sub_1-A",
        "metadata": {"plan": {"tier": "gold"}},
    }
    first = prod.post(url, json=body)
    assert first.status_code == 200
    stored = first.json()
    assert is_uuid(stored["id"])
    assert stored["provisionAttemptId"] == attempt_id
    assert stored["status"] == "Success"
    assert stored["externalProvisionerSubscriptionId"] == "sub_1-A"
    assert stored["metadata"] == {"plan": {"tier": "gold"}}

    second = prod.post(url, json={**body, "status": "Fail"})
    assert_error(second, 409)
    assert second.json()["details"]["resultId"] == stored["id"]
    without_attempt = prod.post(url, json={"status": "Success"})  # defaults to the latest: taken
    assert_error(without_attempt, 409)
    (seen,) = sandbox.results(request_id=request_id)
    assert seen["id"] == stored["id"] and seen["environment"] == "production"
    assert seen["provisionRequestId"] == request_id and seen["createdDate"].endswith("Z")
    assert seen["errorMessage"] is None and seen["externalProvisionerCompanyId"] is None

    assert_error(prod.post(url, json={"status": "Success", "provisionAttemptId": "nope"}), 404)
    assert_error(
        prod.post(f"/provision-requests/{uuid.uuid4()}/results", json={"status": "Success"}), 404
    )


def test_results_need_an_acknowledged_attempt(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    failed, issued, bare = (
        sandbox.bulk(1, attempt_status="Failed")[0],
        sandbox.bulk(1, attempt_status="Issued")[0],
        sandbox.bulk(1, attempt_status=None)[0],
    )
    for created in (failed, issued):
        response = prod.post(
            f"/provision-requests/{created['id']}/results",
            json={"status": "Success", "provisionAttemptId": created["attemptId"]},
        )
        assert_error(response, 400, "provisionAttemptId")
    response = prod.post(f"/provision-requests/{bare['id']}/results", json={"status": "Success"})
    assert_error(response, 400, "provisionAttemptId")
    assert sandbox.results() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "status"),
        ({"status": "success"}, "status"),
        ({"status": "Done"}, "status"),
        ({"status": "Fail", "errorMessage": 42}, "errorMessage"),
        ({"status": "Success", "metadata": ["a"]}, "metadata"),
        (
            {"status": "Success", "externalProvisionerSubscriptionId": ""},
            "externalProvisionerSubscriptionId",
        ),
        (
            {"status": "Success", "externalProvisionerPartnerId": "has space"},
            "externalProvisionerPartnerId",
        ),
        (
            {"status": "Success", "externalProvisionerCompanyId": "abc\n"},
            "externalProvisionerCompanyId",
        ),
        (
            {"status": "Success", "externalProvisionerPartnerEnrollmentId": "é"},
            "externalProvisionerPartnerEnrollmentId",
        ),
        (
            {"status": "Success", "externalProvisionerSubscriptionId": 12},
            "externalProvisionerSubscriptionId",
        ),
    ],
)
def test_result_validation_names_the_field(
    sandbox: SandboxHandle, prod: httpx.Client, body: dict[str, Any], field: str
) -> None:
    (created,) = sandbox.bulk(1, attempt_status="Acknowledged")
    response = prod.post(f"/provision-requests/{created['id']}/results", json=body)
    assert_error(response, 400, field)
    assert sandbox.results() == []


def test_result_body_must_be_json(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    (created,) = sandbox.bulk(1, attempt_status="Acknowledged")
    url = f"/provision-requests/{created['id']}/results"
    assert_error(
        prod.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400
    )
    assert_error(prod.post(url), 400)
    assert_error(prod.post(url, json=["Success"]), 400)


def test_error_message_is_truncated_to_500(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    (created,) = sandbox.bulk(1, attempt_status="Acknowledged")
    response = prod.post(
        f"/provision-requests/{created['id']}/results",
        json={"status": "Fail", "errorMessage": "x" * 501 + "tail"},
    )
    assert response.status_code == 200
    assert response.json()["errorMessage"] == "x" * 500


def test_saved_external_ids_come_back_in_later_details(
    sandbox: SandboxHandle, prod: httpx.Client, listener: WebhookListener
) -> None:
    ids = {
        "subscriptionId": str(uuid.uuid4()),
        "companyId": str(uuid.uuid4()),
        "partnerId": str(uuid.uuid4()),
        "partnerEnrollmentId": str(uuid.uuid4()),
    }
    first = acknowledged_order(sandbox, listener, provisionRequest=ids)
    external = {
        "externalProvisionerSubscriptionId": "vendor-sub-1",
        "externalProvisionerCompanyId": "vendor_company_1",
        "externalProvisionerPartnerId": "VP-1",
        "externalProvisionerPartnerEnrollmentId": "enrol-1",
    }
    response = prod.post(
        f"/provision-requests/{first['provisionRequest']['id']}/results",
        json={"status": "Success", **external},
    )
    assert response.status_code == 200
    assert first["provisionDetail"]["details"] == {}

    # An Update for the same subscription: its detail carries every saved id.
    update = sandbox.order(
        order={
            "provisionRequest": {**ids, "type": "Update"},
            "provisionDetail": {"details": {"seats": {"n": 5}}},
        },
        wait=True,
    )
    assert update["provisionDetail"]["details"] == {**external, "seats": {"n": 5}}
    (received,) = [
        b
        for b in listener.bodies()
        if b["provisionRequest"]["id"] == update["provisionRequest"]["id"]
    ]
    assert received["provisionDetail"]["details"]["externalProvisionerSubscriptionId"] == (
        "vendor-sub-1"
    )
    # Another subscription of the same company and partner: only those ids.
    other = sandbox.order(
        order={"provisionRequest": {"companyId": ids["companyId"], "partnerId": ids["partnerId"]}},
        deliver=False,
    )
    assert other["provisionDetail"]["details"] == {
        "externalProvisionerCompanyId": "vendor_company_1",
        "externalProvisionerPartnerId": "VP-1",
    }
    # A new detail on the first request shows them too.
    fixed = sandbox.new_detail(
        first["provisionRequest"]["id"], {"email": {"v": "b@x"}}, deliver=False
    )
    assert (
        fixed["provisionDetail"]["details"]["externalProvisionerSubscriptionId"] == "vendor-sub-1"
    )


def test_failed_results_save_no_external_ids(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    subscription = str(uuid.uuid4())
    (created,) = sandbox.bulk(
        1,
        order={"provisionRequest": {"subscriptionId": subscription}},
        attempt_status="Acknowledged",
    )
    response = prod.post(
        f"/provision-requests/{created['id']}/results",
        json={"status": "Fail", "externalProvisionerSubscriptionId": "never-saved"},
    )
    assert response.status_code == 200
    later = sandbox.order(
        order={"provisionRequest": {"subscriptionId": subscription}}, deliver=False
    )
    assert later["provisionDetail"]["details"] == {}


# -- unfulfilled -------------------------------------------------------------------------------


def unfulfilled_ids(client: httpx.Client) -> set[str]:
    body = client.get("/provision-requests/unfulfilled", params={"size": 1000}).json()
    return {r["id"] for r in body["content"]}


def test_unfulfilled_follows_results_details_and_manual_attempts(
    sandbox: SandboxHandle, prod: httpx.Client, listener: WebhookListener
) -> None:
    deliver_to(sandbox, listener)
    no_attempt = sandbox.bulk(1, attempt_status=None)[0]["id"]
    lost = sandbox.bulk(1, attempt_status="Failed")[0]["id"]
    issued = sandbox.bulk(1, attempt_status="Issued")[0]["id"]
    done = sandbox.order(wait=True)["provisionRequest"]["id"]
    failed = sandbox.order(wait=True)["provisionRequest"]["id"]
    assert unfulfilled_ids(prod) == {no_attempt, lost, issued, done, failed}

    assert prod.post(f"/provision-requests/{done}/results", json={"status": "Success"}).is_success
    assert prod.post(
        f"/provision-requests/{failed}/results", json={"status": "Fail", "errorMessage": "no"}
    ).is_success
    assert unfulfilled_ids(prod) == {no_attempt, lost, issued}

    # The partner fixes the checkout data: a new detail and attempt reopen the request.
    fixed = sandbox.new_detail(failed, {"email": {"value": "ok@example.com"}}, wait=True)
    assert fixed["provisionAttempt"]["status"] == "Acknowledged"
    assert fixed["provisionAttempt"]["provisionDetailId"] == fixed["provisionDetail"]["id"]
    assert failed in unfulfilled_ids(prod)
    assert prod.post(f"/provision-requests/{failed}/results", json={"status": "Success"}).is_success
    assert failed not in unfulfilled_ids(prod)

    # A manual attempt after a Success does not reopen it: it is fulfilled for good.
    assert prod.post(f"/provision-requests/{done}/attempts").status_code == 200
    assert done not in unfulfilled_ids(prod)
    assert sandbox.request(done)["unfulfilled"] is False
    assert sandbox.request(lost)["unfulfilled"] is True


def test_manual_attempt_is_acknowledged_and_not_delivered(
    sandbox: SandboxHandle, prod: httpx.Client, listener: WebhookListener
) -> None:
    event = acknowledged_order(sandbox, listener)
    request_id = event["provisionRequest"]["id"]
    fixed = sandbox.new_detail(request_id, {"k": {"v": 1}}, deliver=False)
    response = prod.post(f"/provision-requests/{request_id}/attempts")
    assert response.status_code == 200
    attempt = response.json()
    assert attempt["status"] == "Acknowledged"
    assert attempt["provisionDetailId"] == fixed["provisionDetail"]["id"]
    assert attempt["id"] not in {event["provisionAttempt"]["id"], fixed["provisionAttempt"]["id"]}
    assert len(sandbox.deliveries(request_id=request_id)) == 1
    assert len(listener.received) == 1
    assert_error(prod.post(f"/provision-requests/{uuid.uuid4()}/attempts"), 404)


# -- production delivery and retries -----------------------------------------------------------


def test_production_retries_make_new_attempts_until_acknowledged(
    sandbox: SandboxHandle,
) -> None:
    with WebhookListener(statuses=[500, 503], default_status=200) as flaky:
        credential = deliver_to(sandbox, flaky)
        event = sandbox.order(wait=True)
        request_id = event["provisionRequest"]["id"]
        attempts = event["attempts"]
        assert [a["status"] for a in attempts] == ["Failed", "Failed", "Acknowledged"]
        assert len({a["id"] for a in attempts}) == 3
        assert {a["provisionDetailId"] for a in attempts} == {event["provisionDetail"]["id"]}
        assert "500" in attempts[0]["errorDetail"] and "503" in attempts[1]["errorDetail"]
        assert event["provisionAttempt"] == attempts[-1]

        bodies = [r.json() for r in flaky.received]
        assert [b["provisionAttempt"]["id"] for b in bodies] == [a["id"] for a in attempts]
        assert all(b["isSimulation"] is False for b in bodies)
        assert all(b["provisionRequest"]["id"] == request_id for b in bodies)
        assert all(r.headers["pax8ApiTokenV1"] == credential for r in flaky.received)

        log = sandbox.deliveries(request_id=request_id)
        assert [d["statusCode"] for d in log] == [500, 503, 200]
        assert all(d["environment"] == "production" and d["url"] == flaky.url for d in log)


def test_production_retries_stop_after_max_retries(sandbox: SandboxHandle) -> None:
    with WebhookListener(default_status=500) as down:
        deliver_to(sandbox, down)
        event = sandbox.order(wait=True)
        assert len(event["attempts"]) == 1 + MAX_RETRIES
        assert {a["status"] for a in event["attempts"]} == {"Failed"}
        assert len(down.received) == 1 + MAX_RETRIES
        assert event["provisionRequest"]["id"] in unfulfilled_ids(sandbox.api())


def test_background_delivery_and_unreachable_receiver(sandbox: SandboxHandle) -> None:
    with WebhookListener() as receiver:
        deliver_to(sandbox, receiver)
        events = sandbox.orders(count=5)  # not waiting: delivered in the background
        receiver.wait_for(5)
        for event in events:
            sandbox.wait_for_attempts(
                event["provisionRequest"]["id"],
                lambda attempts: [a["status"] for a in attempts] == ["Acknowledged"],
            )
        url = receiver.url
    # The listener is gone: connection refused, retried, all Failed.
    sandbox.create_webhook(url, credential="c")
    event = sandbox.order(wait=True)
    assert [a["status"] for a in event["attempts"]] == ["Failed"] * (1 + MAX_RETRIES)
    assert "connection" in event["attempts"][0]["errorDetail"]


def test_delivery_timeout_fails_the_attempt(tmp_path: Path) -> None:
    with (
        WebhookListener(delay=1.0) as slow,
        start_sandbox(
            tmp_path,
            delivery_timeout=0.2,
            max_retries=0,
            simulation_webhook_url=slow.url,
            simulation_webhook_secret="s",
        ) as quick,
    ):
        event = quick.order(environment="simulation", wait=True)
        assert event["provisionAttempt"]["status"] == "Failed"
        assert "timed out" in event["provisionAttempt"]["errorDetail"]


def test_redeliver_and_duplicates(sandbox: SandboxHandle, listener: WebhookListener) -> None:
    event = acknowledged_order(sandbox, listener)
    request_id, attempt_id = event["provisionRequest"]["id"], event["provisionAttempt"]["id"]

    again = sandbox.redeliver(request_id, wait=True)
    assert again["provisionAttempt"]["id"] != attempt_id
    assert again["provisionAttempt"]["status"] == "Acknowledged"
    assert again["provisionAttempt"]["provisionDetailId"] == event["provisionDetail"]["id"]

    codes = sandbox.duplicate(attempt_id, times=3)
    assert codes == [200, 200, 200]
    same = [b for b in listener.bodies() if b["provisionAttempt"]["id"] == attempt_id]
    assert len(same) == 4  # the original and three duplicates
    assert all(b["provisionRequest"] == same[0]["provisionRequest"] for b in same)
    dupes = [d for d in sandbox.deliveries(request_id=request_id) if d["duplicate"]]
    assert len(dupes) == 3
    assert len(sandbox.request(request_id)["attempts"]) == 2
    response = sandbox.control.post(f"/attempts/{uuid.uuid4()}/deliver", json={"times": 1})
    assert_error(response, 404)


# -- faults ------------------------------------------------------------------------------------


def test_fault_error_with_retry_after_and_times(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    rule = sandbox.add_fault(
        method="GET",
        path="/v2/provision-requests",
        action="error",
        status=429,
        retry_after=2,
        times=2,
    )
    assert rule["remaining"] == 2 and rule["fired"] == 0
    for _ in range(2):
        response = prod.get("/provision-requests")
        assert_error(response, 429)
        assert response.headers["Retry-After"] == "2"
    assert prod.get("/provision-requests").status_code == 200
    assert prod.get("/provision-requests/unfulfilled").status_code == 200  # glob did not match
    (shown,) = sandbox.faults()
    assert shown["remaining"] == 0 and shown["fired"] == 2


def test_fault_error_does_no_work(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    (created,) = sandbox.bulk(1, attempt_status="Acknowledged")
    sandbox.add_fault(
        method="POST", path="/v2/provision-requests/*/results", action="error", status=500, times=1
    )
    url = f"/provision-requests/{created['id']}/results"
    assert_error(prod.post(url, json={"status": "Success"}), 500)
    assert sandbox.results() == []
    assert prod.post(url, json={"status": "Success"}).status_code == 200


def test_fault_error_after_stores_the_result_then_fails(
    sandbox: SandboxHandle, prod: httpx.Client
) -> None:
    (created,) = sandbox.bulk(1, attempt_status="Acknowledged")
    sandbox.add_fault(
        method="POST",
        path="/v2/provision-requests/*/results",
        action="error_after",
        status=502,
        times=1,
    )
    url = f"/provision-requests/{created['id']}/results"
    assert_error(prod.post(url, json={"status": "Success"}), 502)
    (stored,) = sandbox.results(request_id=created["id"])
    assert stored["status"] == "Success" and stored["provisionAttemptId"] == created["attemptId"]
    assert_error(prod.post(url, json={"status": "Success"}), 409)  # the retry meets the first


def test_fault_delay_and_delay_after(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    sandbox.add_fault(method="GET", path="/v2/provisioners", action="delay", seconds=0.4, times=1)
    started = time.monotonic()
    assert prod.get("/provisioners").status_code == 200
    assert time.monotonic() - started >= 0.4

    (created,) = sandbox.bulk(1, attempt_status="Acknowledged")
    sandbox.add_fault(
        method="POST",
        path="/v2/provision-requests/*/results",
        action="delay_after",
        seconds=1.5,
        times=1,
    )
    with (
        httpx.Client(
            base_url=sandbox.api_url,
            timeout=0.3,
            headers={"Authorization": f"Bearer {sandbox.token()}"},
        ) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(f"/provision-requests/{created['id']}/results", json={"status": "Success"})
    # Pax8 stored it although the client gave up.
    (stored,) = sandbox.results(request_id=created["id"])
    assert stored["status"] == "Success"


def test_fault_on_token_endpoint(sandbox: SandboxHandle) -> None:
    sandbox.add_fault(path="/v1/token", action="error", status=503, times=1)
    body = {"client_id": "sandbox-client", "client_secret": "sandbox-secret", "audience": AUDIENCE}
    assert_error(httpx.post(sandbox.token_url, json=body), 503)
    assert httpx.post(sandbox.token_url, json=body).status_code == 200


def test_fault_times_is_exact_under_concurrency(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    sandbox.add_fault(method="GET", path="/v2/provisioners", action="error", status=503, times=7)
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda _: prod.get("/provisioners").status_code, range(60)))
    assert codes.count(503) == 7
    assert codes.count(200) == 53
    assert sandbox.faults()[0]["fired"] == 7


def test_fault_rate_zero_never_fires(sandbox: SandboxHandle, prod: httpx.Client) -> None:
    sandbox.add_fault(path="/v2/*", action="error", rate=0.0)
    assert all(prod.get("/provisioners").status_code == 200 for _ in range(5))
    assert sandbox.faults()[0]["fired"] == 0


def test_webhook_drop_loses_the_notification_without_retry(sandbox: SandboxHandle) -> None:
    with WebhookListener() as receiver:
        deliver_to(sandbox, receiver)
        sandbox.add_fault(path="webhook", action="drop", times=1)
        event = sandbox.order(wait=True)
        assert [a["status"] for a in event["attempts"]] == ["Failed"]
        assert event["provisionAttempt"]["errorDetail"] == "dropped"
        (delivery,) = sandbox.deliveries(request_id=event["provisionRequest"]["id"])
        assert delivery["dropped"] is True and delivery["statusCode"] is None
        assert receiver.received == []
        # The lost request is what reconciliation finds.
        assert event["provisionRequest"]["id"] in unfulfilled_ids(sandbox.api())


def test_webhook_error_and_error_after_faults(sandbox: SandboxHandle) -> None:
    with WebhookListener() as receiver:
        deliver_to(sandbox, receiver)
        sandbox.set_faults([{"path": "webhook", "action": "error", "status": 500, "times": 1}])
        event = sandbox.order(wait=True)
        assert [a["status"] for a in event["attempts"]] == ["Failed", "Acknowledged"]
        assert [b["provisionAttempt"]["id"] for b in receiver.bodies()] == [
            event["attempts"][1]["id"]
        ]

        sandbox.set_faults([{"path": "webhook", "action": "error_after", "times": 1}])
        event = sandbox.order(wait=True)
        # The vendor got the first attempt too, but Pax8 counted it failed and retried.
        assert [a["status"] for a in event["attempts"]] == ["Failed", "Acknowledged"]
        got = [b["provisionAttempt"]["id"] for b in receiver.bodies()[1:]]
        assert got == [a["id"] for a in event["attempts"]]


def test_webhook_delay_fault(sandbox: SandboxHandle, sim: httpx.Client) -> None:
    with WebhookListener() as receiver:
        deliver_to(sandbox, receiver, "simulation")
        sandbox.add_fault(path="webhook", action="delay", seconds=0.3, times=1)
        started = time.monotonic()
        answer = sim.post("/provision-simulations/order-events", json={}).json()
        assert time.monotonic() - started >= 0.3
        assert answer["provisionAttempt"]["status"] == "Acknowledged"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"path": "/v2/*", "action": "drop"}, "rule.action"),
        ({"path": "/v2/*", "action": "explode"}, "rule.action"),
        ({"action": "error"}, "rule.path"),
        ({"path": "/v2/*", "action": "delay"}, "rule.seconds"),
        ({"path": "/v2/*", "action": "error", "time": 1}, "rule.time"),
        ({"path": "/v2/*", "action": "error", "rate": 2}, "rule.rate"),
        ({"path": "/v2/*", "action": "error", "times": 0}, "rule.times"),
        ({"path": "/v2/*", "action": "error", "status": 99}, "rule.status"),
    ],
)
def test_fault_rules_are_validated(
    sandbox: SandboxHandle, rule: dict[str, Any], field: str
) -> None:
    assert_error(sandbox.control.post("/faults", json=rule), 400, field)
    assert sandbox.faults() == []


def test_fault_rules_replace_and_clear(sandbox: SandboxHandle) -> None:
    sandbox.add_fault(path="/v2/*", action="error")
    rules = sandbox.set_faults(
        [{"path": "/v1/token", "action": "error"}, {"path": "webhook", "action": "drop"}]
    )
    assert [r["path"] for r in rules] == ["/v1/token", "webhook"]
    assert [r["path"] for r in sandbox.faults()] == ["/v1/token", "webhook"]
    assert_error(
        sandbox.control.put("/faults", json={"rules": [{"path": "x"}]}), 400, "rules[0].action"
    )
    sandbox.clear_faults()
    assert sandbox.faults() == []


# -- control plane -----------------------------------------------------------------------------


def test_bulk_creates_ten_thousand_requests_without_delivering(
    sandbox: SandboxHandle, prod: httpx.Client, listener: WebhookListener
) -> None:
    hook = sandbox.create_webhook(listener.url)
    created = sandbox.bulk(10_000)
    assert len({c["id"] for c in created}) == 10_000
    body = prod.get("/provision-requests/unfulfilled", params={"size": 1000, "page": 9}).json()
    assert body["page"] == {"size": 1000, "totalElements": 10_000, "totalPages": 10, "number": 9}
    assert [r["id"] for r in body["content"]] == [c["id"] for c in created[9000:]]
    last = prod.get(f"/provision-requests/{created[-1]['id']}/attempts/latest").json()
    assert last["status"] == "Failed" and last["webhookId"] == hook["id"]
    assert listener.received == [] and sandbox.deliveries() == []

    ack = sandbox.bulk(2, environment="simulation", attempt_status="Acknowledged")
    sim_attempt = (
        sandbox.api(simulation=True)
        .get(f"/provision-requests/{ack[0]['id']}/attempts/latest")
        .json()
    )
    assert sim_attempt["status"] == "Acknowledged" and is_uuid(sim_attempt["webhookId"])


def test_calls_are_counted_by_route_template_and_environment(
    sandbox: SandboxHandle, prod: httpx.Client, sim: httpx.Client
) -> None:
    created = sandbox.bulk(2)
    sandbox.reset_calls()
    for c in created:
        prod.get(f"/provision-requests/{c['id']}/attempts/latest")
    prod.get("/provision-requests/unfulfilled")
    sim.get("/provision-requests/unfulfilled")
    httpx.get(f"{sandbox.api_url}/provisioners")  # no token: counted, no environment
    sandbox.config()  # control plane: not counted

    calls = sandbox.calls()
    assert calls["total"] == 5
    assert calls["by_operation"] == {
        "GET /v2/provision-requests/{id}/attempts/latest": 2,
        "GET /v2/provision-requests/unfulfilled": 2,
        "GET /v2/provisioners": 1,
    }
    assert calls["by_environment"]["production"] == {
        "GET /v2/provision-requests/{id}/attempts/latest": 2,
        "GET /v2/provision-requests/unfulfilled": 1,
    }
    assert calls["by_environment"]["simulation"] == {"GET /v2/provision-requests/unfulfilled": 1}

    sandbox.token(simulation=True)
    assert sandbox.calls()["by_environment"]["simulation"]["POST /v1/token"] == 1
    sandbox.reset_calls()
    assert sandbox.calls()["total"] == 0


def test_orders_control_validates_and_fixes_ids(sandbox: SandboxHandle) -> None:
    request_id = str(uuid.uuid4())
    (event,) = sandbox.orders(order={"provisionRequest": {"id": request_id}}, deliver=False)
    assert event["provisionRequest"]["id"] == request_id
    assert event["provisionAttempt"]["status"] == "Issued"
    assert event["isSimulation"] is False

    again = sandbox.control.post(
        "/orders", json={"order": {"provisionRequest": {"id": request_id}}, "deliver": False}
    )
    assert_error(again, 409)
    many = sandbox.control.post(
        "/orders", json={"count": 2, "order": {"provisionRequest": {"id": str(uuid.uuid4())}}}
    )
    assert_error(many, 400, "order.provisionRequest.id")
    for body, field in (
        ({"count": 0}, "count"),
        ({"count": 10_001}, "count"),
        ({"environment": "staging"}, "environment"),
        ({"wiat": True}, "wiat"),
        ({"order": {"provisionRequest": {"quantity": -1.5}}}, "order.provisionRequest.quantity"),
    ):
        assert_error(sandbox.control.post("/orders", json=body), 400, field)

    three = sandbox.orders(count=3, environment="simulation", deliver=False)
    assert len({e["provisionRequest"]["id"] for e in three}) == 3
    assert all(e["isSimulation"] for e in three)

    # Several products in turn: orders for several backends of a routes file.
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"count": 5, "deliver": False, "products": [first, second.upper()]}
    spread = sandbox.control.post("/orders", json=body).json()["orders"]
    assert [e["provisionRequest"]["productId"] for e in spread] == [first, second] * 2 + [first]
    for products, field in (([], "products"), (["not-a-uuid"], "products.0"), ("x", "products")):
        bad = {"count": 2, "deliver": False, "products": products}
        assert_error(sandbox.control.post("/orders", json=bad), 400, field)


def test_reset_keeps_webhooks_unless_asked(tmp_path: Path) -> None:
    with start_sandbox(
        tmp_path,
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret="preset-secret",
        webhook_header="X-Pax8-Secret",
    ) as preset:
        config = preset.config()
        (hook,) = config["environments"]["production"]["webhooks"]
        assert hook["url"] == "http://127.0.0.1:9/hook" and hook["preset"] is True
        assert hook["sharedSecret"]["header"] == "X-Pax8-Secret"
        assert config["environments"]["simulation"]["webhooks"] == []

        preset.create_webhook("http://127.0.0.1:9/other")
        preset.bulk(3)
        token = preset.token()
        preset.add_fault(path="/v2/*", action="error")
        preset.reset()
        assert preset.requests() == [] and preset.faults() == []
        assert len(preset.config()["environments"]["production"]["webhooks"]) == 2
        response = httpx.get(
            f"{preset.api_url}/provisioners", headers={"Authorization": f"Bearer {token}"}
        )
        assert_error(response, 401)

        preset.reset(webhooks=True)
        (again,) = preset.config()["environments"]["production"]["webhooks"]
        assert again["url"] == hook["url"] and again["id"] != hook["id"]


def test_preset_webhook_delivers_with_its_header(tmp_path: Path) -> None:
    with (
        WebhookListener() as receiver,
        start_sandbox(
            tmp_path,
            simulation_webhook_url=receiver.url,
            simulation_webhook_secret="sim-secret",
            webhook_header="X-Custom-Key",
        ) as preset,
    ):
        event = preset.order(environment="simulation", wait=True)
        assert event["provisionAttempt"]["status"] == "Acknowledged"
        (received,) = receiver.received
        assert received.headers["X-Custom-Key"] == "sim-secret"
        assert received.json()["isSimulation"] is True


def test_control_plane_dumps_and_json_errors(
    sandbox: SandboxHandle, listener: WebhookListener
) -> None:
    event = acknowledged_order(sandbox, listener)
    (dump,) = sandbox.requests(environment="production")
    assert dump["provisionRequest"] == event["provisionRequest"]
    assert [d["id"] for d in dump["details"]] == [event["provisionDetail"]["id"]]
    assert dump["attempts"][0]["status"] == "Acknowledged"
    assert dump["results"] == [] and dump["unfulfilled"] is True
    assert sandbox.requests(environment="simulation") == []
    (delivery,) = sandbox.deliveries(environment="production")
    assert delivery["attemptId"] == event["provisionAttempt"]["id"]
    assert delivery["statusCode"] == 200 and delivery["error"] is None
    assert delivery["durationMs"] >= 0 and delivery["dropped"] is False

    assert sandbox.control.get("/health").json() == {"status": "ok"}
    assert sandbox.control.get("/openapi.json").json()["info"]["title"] == (
        "Vendor Provisioning Endpoints"
    )
    assert_error(sandbox.control.get("/nothing-here"), 404)
    assert_error(sandbox.control.get("/requests", params={"environment": "qa"}), 400, "environment")
    assert_error(httpx.get(f"{sandbox.url}/v2/nowhere"), 404)
    json_type = {"Content-Type": "application/json"}
    assert_error(sandbox.control.post("/reset", content=b"[1", headers=json_type), 400)


# -- the process -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--port", "70000"], {}, "--port"),
        (["--max-retries", "many"], {}, "--max-retries"),
        ([], {"SANDBOX_TOKEN_TTL": "soon"}, "SANDBOX_TOKEN_TTL"),
        (["--webhook-url", "ftp://x"], {}, "--webhook-url"),
        (["--webhook-url", "http://127.0.0.1:9/x"], {}, "--webhook-secret"),
        (["--retry-delay", "-1"], {}, "--retry-delay"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=ROOT,
        env={**clean_env, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


def test_sigterm_stops_cleanly_and_options_come_from_env(tmp_path: Path) -> None:
    handle = start_sandbox(
        tmp_path,
        name="env-sandbox",
        client_id="cli-client",
        env={"SANDBOX_MAX_RETRIES": "7", "SANDBOX_CLIENT_ID": "env-client"},
    )
    try:
        config = handle.config()
        assert config["maxRetries"] == 7  # from the environment
        assert config["environments"]["production"]["clientId"] == "cli-client"  # option wins
        handle.proc.wait_log(f"sandbox listening on {handle.url}")
    finally:
        assert handle.stop() == 0


# -- the server ----------------------------------------------------------------------------


def _three_requests(url: str) -> list[tuple[bool, str | None, tuple[str, int]]]:
    """(will close, Connection header, the client's address) of three requests sent on one
    connection: a read, a POST whose body is refused, another read."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    seen = []
    try:
        for method, path, body in (
            ("GET", "/sandbox/health", None),
            ("POST", "/oauth/token", b'{"grant_type": "nonsense"}'),
            ("GET", "/sandbox/health", None),
        ):
            connection.request(
                method, path, body=body, headers={"Content-Type": "application/json"}
            )
            address = connection.sock.getsockname()
            response = connection.getresponse()
            response.read()
            seen.append((response.will_close, response.getheader("Connection"), address))
    finally:
        connection.close()
    return seen


def test_connections_are_kept_open_unless_asked_not_to(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    kept = _three_requests(sandbox.url)
    assert [(close, header) for close, header, _ in kept] == [(False, None)] * 3
    assert len({address for _, _, address in kept}) == 1  # one TCP connection for all three

    closing = start_sandbox(tmp_path, keep_alive=False)
    try:
        host, port = closing.url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/sandbox/health")
        response = connection.getresponse()
        response.read()
        assert (response.will_close, response.getheader("Connection")) == (True, "close")
        connection.close()
    finally:
        closing.stop()
