"""Every row of ``docs/architecture.md#http-answers-of-the-receiver`` with real HTTP requests to
gunicorn started from the Procfile.

Nothing here is mocked: redis-server, the receiver, a celery worker and the sandbox
run as processes on loopback.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from config.version import LEDGER_SCHEMA, __version__
from tests.support.procs import wait_until
from tests.support.stack import (
    HEADER,
    PROD_SECRET,
    SIM_SECRET,
    Stack,
    notification,
    unique_domain,
)
from vendors.example import ExampleAdapter

OLD_SECRET = "rotating-out-secret"
CLOUDBLUE_SECRET = "cloudblue-secret"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("receiver"),
        env={
            "PAX8_WEBHOOK_SECRETS": f"{OLD_SECRET},{PROD_SECRET}",
            "CLOUDBLUE_WEBHOOK_SECRETS": CLOUDBLUE_SECRET,
        },
    )
    try:
        running.start_receiver()
        running.start_worker()
        yield running
    finally:
        running.stop()


def provisionings(stack: Stack, request_id: str, simulation: bool = False) -> list[dict[str, Any]]:
    """What the example vendor actually did for ``request_id``."""
    vendor = ExampleAdapter(client=stack.redis())
    return [p for p in vendor.provisionings(simulation) if p["requestId"] == request_id]


def test_valid_notification_is_accepted_and_fulfilled(stack: Stack) -> None:
    body = stack.sandbox_notification()
    response = stack.post_webhook(body)
    assert response.status_code == 202, response.text
    assert response.json()["action"] == "queued"
    request_id = body["provisionRequest"]["id"]
    stack.wait_state(request_id, "reported")
    results = stack.sandbox.results(request_id=request_id)
    assert [r["status"] for r in results] == ["Success"]
    assert results[0]["provisionAttemptId"] == body["provisionAttempt"]["id"]


def test_both_secrets_of_a_rotation_are_accepted(stack: Stack) -> None:
    for secret in (OLD_SECRET, PROD_SECRET):
        body = notification()
        response = stack.post_webhook(body, secret=secret)
        assert response.status_code == 202, response.text


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", PROD_SECRET + "x"])
def test_missing_or_wrong_secret_is_401_and_nothing_recorded(
    stack: Stack, secret: str | None
) -> None:
    body = notification()
    response = stack.post_webhook(body, secret=secret)
    assert response.status_code == 401
    assert HEADER in response.json()["error"]
    assert stack.record(body["provisionRequest"]["id"]) is None


def test_simulation_secret_on_production_payload_is_401(stack: Stack) -> None:
    body = notification(simulation=False)
    response = stack.post_webhook(body, secret=SIM_SECRET)
    assert response.status_code == 401
    assert "isSimulation" in response.json()["error"]
    assert stack.record(body["provisionRequest"]["id"]) is None


def test_simulation_secret_on_simulated_payload_is_accepted(stack: Stack) -> None:
    body = stack.sandbox_notification(simulation=True)
    response = stack.post_webhook(body, secret=SIM_SECRET)
    assert response.status_code == 202
    request_id = body["provisionRequest"]["id"]
    stack.wait_state(request_id, "reported")
    results = stack.sandbox.results(request_id=request_id)
    # Answered with the simulation credential set: the result lives in the simulation world.
    assert [r["environment"] for r in results] == ["simulation"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json at all", "body"),
        (b"[1, 2]", "body"),
        (json.dumps({"provisionAttempt": {"id": "a"}}).encode(), "provisionRequest"),
        (
            json.dumps({"provisionRequest": {"id": ""}, "provisionAttempt": {"id": "a"}}).encode(),
            "provisionRequest.id",
        ),
        (
            json.dumps({"provisionRequest": {"id": "r"}, "provisionAttempt": {}}).encode(),
            "provisionAttempt.id",
        ),
        (
            json.dumps(
                {
                    "provisionRequest": {"id": "r", "type": "Nope"},
                    "provisionAttempt": {"id": "a", "provisionDetailId": "d"},
                }
            ).encode(),
            "provisionRequest.type",
        ),
        (
            json.dumps(
                {
                    "provisionRequest": {"id": "r", "type": "NetNew", "quantity": "many"},
                    "provisionDetail": {"id": "d"},
                    "provisionAttempt": {"id": "a"},
                }
            ).encode(),
            "provisionRequest.quantity",
        ),
    ],
)
def test_malformed_body_is_400_naming_the_field(stack: Stack, body: bytes, field: str) -> None:
    response = stack.post_webhook(body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert stack.record("r") is None


def test_tolerant_parsing_of_pax8_quirks(stack: Stack) -> None:
    body = notification()
    request = body["provisionRequest"]
    request["compayDomain"] = request.pop("companyDomain")
    request["commitmentTermMonths"] = 12
    request["somethingNew"] = {"nested": True}
    body["provisionAttempt"]["createdDate"] = "2025-08-05T20:01:22.600612546Z"
    response = stack.post_webhook(body)
    assert response.status_code == 202, response.text
    record = stack.wait_state(request["id"], "provisioned", "reported")
    assert json.loads(record.payload)["provisionRequest"]["somethingNew"] == {"nested": True}
    assert provisionings(stack, request["id"])  # the misspelled domain reached the vendor


def test_oversize_body_is_413_with_content_length(stack: Stack) -> None:
    body = notification(details={"blob": "x" * (257 * 1024)})
    response = stack.post_webhook(body)
    assert response.status_code == 413
    assert stack.record(body["provisionRequest"]["id"]) is None


def test_oversize_body_is_413_without_content_length(stack: Stack) -> None:
    chunk = b"x" * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"provisionRequest": {"id": "chunked"}, "blob": "'
        for _ in range(6):
            yield chunk
        yield b'"}'

    response = stack.http.post(
        f"{stack.receiver_url}/webhooks/pax8",
        content=chunks(),
        headers={HEADER: PROD_SECRET, "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert stack.record("chunked") is None


def test_redelivery_of_the_same_attempt_provisions_once(stack: Stack) -> None:
    body = stack.sandbox_notification()
    request_id = body["provisionRequest"]["id"]
    first = stack.post_webhook(body)
    assert first.status_code == 202
    stack.wait_state(request_id, "reported")
    again = stack.post_webhook(body)
    assert again.status_code == 202
    assert again.json()["action"] == "duplicate"
    assert len(provisionings(stack, request_id)) == 1
    assert len(stack.sandbox.results(request_id=request_id)) == 1


def test_five_concurrent_deliveries_provision_once(stack: Stack) -> None:
    body = stack.sandbox_notification()
    request_id = body["provisionRequest"]["id"]
    with ThreadPoolExecutor(5) as pool:
        codes = list(pool.map(lambda _: stack.post_webhook(body).status_code, range(5)))
    assert codes == [202] * 5
    stack.wait_state(request_id, "reported")
    assert len(provisionings(stack, request_id)) == 1
    assert len(stack.sandbox.results(request_id=request_id)) == 1


def test_pax8_retry_with_new_attempt_only_reports_again(stack: Stack) -> None:
    order = stack.sandbox.order(
        environment="production",
        wait=True,
        order={"provisionRequest": {"companyDomain": unique_domain()}},
    )
    request_id = order["provisionRequest"]["id"]
    stack.wait_state(request_id, "reported")
    retry = stack.sandbox.redeliver(request_id, wait=True)
    new_attempt = retry["provisionAttempt"]["id"]
    wait_until(
        lambda: len(stack.sandbox.results(request_id=request_id)) == 2,
        30,
        message=lambda: str(stack.sandbox.request(request_id)),
    )
    stack.wait_state(request_id, "reported")
    results = stack.sandbox.results(request_id=request_id)
    assert sorted(r["provisionAttemptId"] for r in results) == sorted(
        [order["provisionAttempt"]["id"], new_attempt]
    )
    assert len(provisionings(stack, request_id)) == 1


def test_new_detail_after_fail_provisions_again(stack: Stack) -> None:
    order = stack.sandbox.order(
        environment="production",
        wait=True,
        order={
            "provisionRequest": {"companyDomain": unique_domain()},
            "provisionDetail": {"details": {"adminEmail": "not-an-email"}},
        },
    )
    request_id = order["provisionRequest"]["id"]
    stack.wait_state(request_id, "reported")
    (fail,) = stack.sandbox.results(request_id=request_id)
    assert fail["status"] == "Fail"
    assert "not a valid email" in fail["errorMessage"]
    # The partner fixes the checkout data: Pax8 makes a new detail and attempt.
    fixed = stack.sandbox.new_detail(
        request_id, details={"adminEmail": "ops@example.com"}, wait=True
    )
    wait_until(lambda: len(stack.sandbox.results(request_id=request_id)) == 2, 30)
    results = stack.sandbox.results(request_id=request_id)
    assert [r["status"] for r in results] == ["Fail", "Success"]
    assert results[1]["provisionAttemptId"] == fixed["provisionAttempt"]["id"]
    assert len(provisionings(stack, request_id)) == 1  # the refusal changed nothing


def test_cloudblue_request_url_is_answered_with_the_outcome(stack: Stack) -> None:
    payload = {
        "requestId": f"cb-{uuid.uuid4()}",
        "operation": "creation",
        "tenantId": str(uuid.uuid4()),
        "tenant": {"activationParameters": [{"key": "domain", "value": unique_domain()}]},
        "customer": {"companyName": "CB Customer"},
        "products": [{"mpn": "PRODUCT-1", "limit": 5, "name": {"en_US": "Seats"}}],
        "subscriptionId": str(uuid.uuid4()),
        "subscriptionNumericId": 1000123,
    }
    url = f"{stack.receiver_url}/webhooks/cloudblue"
    wrong = stack.http.post(url, json=payload, headers={"X-Fulfillment-Token": "nope"})
    assert wrong.status_code == 401
    missing = stack.http.post(
        url, json={**payload, "tenantId": None}, headers={"X-Fulfillment-Token": CLOUDBLUE_SECRET}
    )
    assert missing.status_code == 400 and missing.json()["field"] == "tenantId"
    ok = stack.http.post(
        f"{url}/create",
        json=payload,
        headers={"Authorization": "Bearer x", "X-Fulfillment-Token": f"Bearer {CLOUDBLUE_SECRET}"},
    )
    assert ok.status_code == 200, ok.text
    request_id = ok.headers["X-Fulfillment-Request-Id"]
    record = stack.wait_state(request_id, "reported")
    assert record.outcome == "Success" and record.source == "cloudblue"
    (made,) = provisionings(stack, request_id)
    assert made["type"] == "NetNew"
    vendor = ExampleAdapter(client=stack.redis()).subscription(False, payload["subscriptionId"])
    assert ok.json()["vendorSubscriptionId"] == vendor["external_id"]


def test_health_and_readiness(stack: Stack) -> None:
    assert stack.http.get(f"{stack.receiver_url}/healthz").status_code == 200
    ready = stack.http.get(f"{stack.receiver_url}/readyz")
    assert ready.status_code == 200
    # Which release answers, and the schema the ledger's data is at (stamped at its start).
    assert ready.json() == {"status": "ok", "release": __version__, "schema": LEDGER_SCHEMA}
    assert stack.http.get(f"{stack.receiver_url}/nope").status_code == 404
    assert stack.http.get(f"{stack.receiver_url}/webhooks/pax8").status_code == 405


def test_a_body_that_never_arrives_is_408_within_the_deadline(stack: Stack) -> None:
    """A valid credential, ``Content-Length: 1000`` and 5 bytes: the receiver answers 408
    once ``WEB_BODY_TIMEOUT_SECONDS`` (5) have passed and lets the connection go, rather
    than holding it as long as the client likes (40 s before the deadline existed)."""
    head = (
        "POST /webhooks/pax8 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{HEADER}: {PROD_SECRET}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", stack.receiver_port), timeout=15) as sock:
        started = time.monotonic()
        sock.sendall(head + b'{"pro')
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = sock.recv(4096)
            assert part, "closed without an answer"
            answer += part
        answered = time.monotonic() - started
        rest = b""
        while part:  # the connection is let go soon after the answer
            part = sock.recv(4096)
            rest += part
        closed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 5s" in answer + rest
    assert 4.5 <= answered < 7.0, answered
    assert closed < 10.0, closed


def test_redis_down_is_503_with_retry_after_and_nothing_seen(tmp_path: Any) -> None:
    stack = Stack(tmp_path)
    try:
        stack.start_receiver()
        body = notification()
        stack.redis_server.stop()
        response = stack.post_webhook(body)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        down = stack.http.get(f"{stack.receiver_url}/readyz")
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable", "release": __version__}
        assert stack.http.get(f"{stack.receiver_url}/healthz").status_code == 200
        stack.redis_server.start()
        assert stack.record(body["provisionRequest"]["id"]) is None  # nothing marked seen
        # Pax8 retries: accepted now, and queued for a worker.
        retry = stack.post_webhook(body)
        assert retry.status_code == 202
        assert retry.json()["action"] == "queued"
        record = stack.record(body["provisionRequest"]["id"])
        assert record is not None and record.state == "queued"
    finally:
        stack.stop()


def test_port_is_loopback_only_in_tests() -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("203.0.113.1", 80))
