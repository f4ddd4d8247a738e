"""The CloudBlue routes in-process: Flask's test client over ``create_app`` with a real
redis-server and the real Celery publisher, and an in-process "worker" that takes the task
messages off their queues and runs :func:`fulfillment.workflow.provisioning.fulfil` on them (the
example vendor, on the same Redis).

Each call is made in a thread (the receiver waits for the outcome), while the test plays
the worker; the answers are the ones PLM reads: 200 + ProvisioningResponsePayload, 422,
503 + Retry-After, and a retry answered from the ledger.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import TestResponse

from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import State
from fulfillment.names import PROVISION_TASKS
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from fulfillment.workflow.provisioning import fulfil
from receiver.app import create_app
from tests.support.cloudblue import HEADER, SECRET, check_response, payload
from tests.support.procs import wait_until
from tests.unit.conftest import ServicesFactory, make_settings
from vendors.example import ExampleAdapter
from worker.services import build_services

URL = "/webhooks/cloudblue"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def build(redis_url: str) -> Iterator[Any]:
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        values = {
            "cloudblue_webhook_secrets": SECRET,
            "cloudblue_response_timeout_seconds": 10,
            **overrides,
        }
        settings = make_settings(redis_url, **values)
        app = create_app(settings, build_services(settings, RedisUse.RECEIVER))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["fulfillment"].services.close()


@pytest.fixture
def worker(make_services: ServicesFactory) -> Services:
    return make_services()


def run_queued(raw: redis.Redis, services: Services) -> int:
    """Run every provisioning task waiting on its queue, as a worker would; how many ran."""
    ran = 0
    for queue in PROVISION_TASKS.values():
        while (message := raw.rpop(queue)) is not None:
            envelope = json.loads(str(message))
            args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
            ref = Ref.of(kwargs["source"], kwargs["simulation"], args[0])
            fulfil(services, ref, args[1], envelope["headers"]["id"])
            ran += 1
    return ran


def call(
    app: Flask,
    body: dict[str, Any],
    suffix: str | None = None,
    *,
    worker: tuple[redis.Redis, Services] | None = None,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """POST a call in a thread; meanwhile play the worker (when given) until it answers."""
    url = URL if suffix is None else f"{URL}/{suffix}"
    answer: list[TestResponse] = []
    sent = {HEADER: SECRET} if headers is None else headers

    def send() -> None:
        answer.append(app.test_client().post(url, data=json.dumps(body), headers=sent))

    thread = threading.Thread(target=send)
    thread.start()

    def answered() -> bool:
        if worker is not None:
            run_queued(*worker)
        thread.join(0.02)
        return not thread.is_alive()

    wait_until(answered, 30, interval=0, message="the receiver never answered")
    return answer[0]


def vendor_log(raw: redis.Redis, request_id: str) -> list[dict[str, Any]]:
    return [
        p for p in ExampleAdapter(client=raw).provisionings(False) if p["requestId"] == request_id
    ]


def test_a_creation_is_answered_200_with_the_vendors_subscription_and_parameters(
    build: Any, raw: redis.Redis, worker: Services
) -> None:
    app = build()
    body = payload("creation")
    response = call(app, body, "create", worker=(raw, worker))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.json
    check_response(answer)
    request_id = response.headers["X-Fulfillment-Request-Id"]
    vendor = ExampleAdapter(client=raw).subscription(False, body["subscriptionId"])
    assert answer["vendorSubscriptionId"] == vendor["external_id"]
    parameters = {p["id"]: p for p in answer["fulfillmentParameters"]}
    assert parameters["status"]["value"] == "active"
    assert parameters["limits"]["structuredValue"] == {"SEATS": 5}
    assert worker.ledger.get(Ref(Scope.CLOUDBLUE, request_id)).state == "reported"
    # The platform calls again (its answer was lost): the same answer, from the ledger.
    again = call(app, body, "create")
    assert again.status_code == 200 and again.json == answer
    assert again.headers["X-Fulfillment-Request-Id"] == request_id
    assert len(vendor_log(raw, request_id)) == 1


def test_a_vendor_refusal_is_422_with_its_message_and_stays_one(
    build: Any, raw: redis.Redis, worker: Services
) -> None:
    app = build()
    body = payload("creation", domain=None)
    response = call(app, body, worker=(raw, worker))
    assert response.status_code == 422
    assert "no domain" in response.json["error"] and response.json["status"] == 422
    request_id = response.headers["X-Fulfillment-Request-Id"]
    retry = call(app, body)
    assert retry.status_code == 422 and retry.json == response.json
    record = worker.ledger.get(Ref(Scope.CLOUDBLUE, request_id))
    assert record is not None and record.outcome == "Fail"
    claims = [h for h in worker.ledger.history(record.ref) if h["event"] == "claimed"]
    assert len(claims) == 1  # the retry reached no worker


def test_past_the_deadline_503_and_the_retry_is_answered_from_the_ledger(
    build: Any, raw: redis.Redis, worker: Services
) -> None:
    app = build(cloudblue_response_timeout_seconds=0.3)
    body = payload("creation")
    late = call(app, body, "create")  # nobody works: past the deadline
    assert late.status_code == 503 and late.headers["Retry-After"] == "5"
    assert "never provisioned twice" in late.json["error"]
    request_id = late.headers["X-Fulfillment-Request-Id"]
    assert run_queued(raw, worker) == 1  # the order was queued once, and is done now
    retry = call(app, body, "create")
    assert retry.status_code == 200, retry.get_data(as_text=True)
    assert retry.headers["X-Fulfillment-Request-Id"] == request_id
    assert run_queued(raw, worker) == 0  # the retry queued nothing
    assert len(vendor_log(raw, request_id)) == 1


def test_an_order_given_up_on_is_503_with_a_long_retry_after(
    build: Any, raw: redis.Redis, worker: Services
) -> None:
    app = build(cloudblue_response_timeout_seconds=5)
    body = payload("creation")

    def kill_it() -> bool:
        # What an adapter bug does to the order (provisioning marks it dead).
        for record in worker.ledger.recent(state=State.QUEUED):
            worker.ledger.mark_dead(record.ref, "adapter error: KeyError: 'tenant_id'")
            return True
        return False

    answer: list[TestResponse] = []
    thread = threading.Thread(
        target=lambda: answer.append(
            app.test_client().post(f"{URL}/create", data=json.dumps(body), headers={HEADER: SECRET})
        )
    )
    thread.start()
    wait_until(kill_it, 10)
    thread.join(10)
    response = answer[0]
    assert response.status_code == 503 and response.headers["Retry-After"] == "300"
    assert "KeyError" not in response.get_data(as_text=True)  # internals stay inside


def test_stop_start_stop_without_request_id_each_reach_the_vendor(
    build: Any, raw: redis.Redis, worker: Services
) -> None:
    app = build()
    created = payload("creation")
    assert call(app, created, worker=(raw, worker)).status_code == 200
    stop = {**created, "operation": "stopping"}
    stop.pop("requestId")
    start = {**stop, "operation": "starting"}
    answers = [call(app, body, worker=(raw, worker)) for body in (stop, start, stop)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    ids = [a.headers["X-Fulfillment-Request-Id"] for a in answers]
    assert len(set(ids)) == 3
    statuses = [{p["id"]: p.get("value") for p in a.json["fulfillmentParameters"]} for a in answers]
    assert [s["status"] for s in statuses] == ["suspended", "active", "suspended"]
    assert ExampleAdapter(client=raw).subscription(False, created["subscriptionId"])["status"] == (
        "suspended"
    )
    # The last stop, sent again at once, is its retry: answered, not applied again.
    again = call(app, stop, worker=(raw, worker))
    assert again.headers["X-Fulfillment-Request-Id"] == ids[2]
    assert sum(len(vendor_log(raw, request_id)) for request_id in ids) == 3


def test_concurrent_retries_wait_for_the_same_outcome(
    build: Any, raw: redis.Redis, worker: Services
) -> None:
    app = build()
    body = payload("creation")
    answers: list[TestResponse] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                app.test_client().post(URL, data=json.dumps(body), headers={HEADER: SECRET})
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: run_queued(raw, worker), 10, message="no task was queued")
    for thread in threads:
        thread.join(10)
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.headers["X-Fulfillment-Request-Id"] for a in answers}) == 1
    assert run_queued(raw, worker) == 0


@pytest.mark.parametrize(
    ("suffix", "mutate", "status", "field"),
    [
        ("stop", lambda b: b.update(operation="starting"), 400, "operation"),
        ("teleport", lambda b: b.pop("operation"), 400, "operation"),
        (None, lambda b: b.update(operation="teleport"), 400, "operation"),
        (
            "create",
            lambda b: b.update(products=[{"mpn": "X", "limit": "5"}]),
            400,
            "products.0.limit",
        ),
        ("create", lambda b: b.update(subscriptionId="victim:history"), 400, "subscriptionId"),
    ],
)
def test_bad_calls_are_400_naming_the_field_and_record_nothing(
    build: Any, raw: redis.Redis, suffix: str | None, mutate: Any, status: int, field: str
) -> None:
    app = build()
    body = payload("creation")
    mutate(body)
    url = URL if suffix is None else f"{URL}/{suffix}"
    response = app.test_client().post(url, data=json.dumps(body), headers={HEADER: SECRET})
    assert response.status_code == status and response.json["field"] == field
    if suffix == "stop":
        assert "stopping" in response.json["error"] and "starting" in response.json["error"]
    assert raw.keys("ff:req:*") == []


def test_a_new_suffix_is_taken_from_the_body_and_logged(
    build: Any, raw: redis.Redis, worker: Services, caplog: pytest.LogCaptureFixture
) -> None:
    app = build()
    with caplog.at_level("WARNING", logger="receiver.cloudblue"):
        response = call(app, payload("creation"), "provisionSubscription2", worker=(raw, worker))
    assert response.status_code == 200
    assert "new URL suffix 'provisionSubscription2' taken as creation" in caplog.text


@pytest.mark.parametrize("route", ["", "/", "/stop", "//stop", "/stop/"])
def test_every_spelling_of_the_url_reaches_the_route(build: Any, route: str) -> None:
    app = build(cloudblue_response_timeout_seconds=0.05)
    body = payload("stopping")
    response = app.test_client().post(URL + route, data=json.dumps(body), headers={HEADER: SECRET})
    assert response.status_code == 503  # recorded (nobody works here), not 404 or a redirect


def test_the_credential_header_bearer_or_basic_and_nothing_else(
    build: Any, raw: redis.Redis
) -> None:
    app = build(cloudblue_response_timeout_seconds=0.05)
    client = app.test_client()
    data = json.dumps(payload("creation"))
    basic = base64.b64encode(f"cloudblue:{SECRET}".encode()).decode()
    for headers in (
        {HEADER: SECRET},
        {HEADER: f"Bearer {SECRET}"},
        {"Authorization": f"Bearer {SECRET}"},
        {"Authorization": f"Basic {basic}"},
    ):
        assert client.post(URL, data=data, headers=headers).status_code == 503, headers
    before = raw.keys("ff:req:*")
    wrong = base64.b64encode(f"{SECRET}:nope".encode()).decode()
    for headers in (
        {},
        {HEADER: "nope"},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {wrong}"},
        {"Authorization": "Basic %%%"},
    ):
        refused = client.post(URL, data=json.dumps(payload("creation")), headers=headers)
        assert refused.status_code == 401, headers
        assert SECRET not in refused.get_data(as_text=True)
    assert raw.keys("ff:req:*") == before
    off = build(cloudblue_webhook_secrets="")
    assert off.test_client().post(URL, data=data).status_code == 404
