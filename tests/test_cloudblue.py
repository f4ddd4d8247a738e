"""CloudBlue request-URL calls against real processes: gunicorn (the Procfile's ``web``
line, gevent workers) and celery (the ``worker`` line) on a real redis-server.

What PLM sees: each of the six operations through its URL suffix and through the bare base
URL, answered 200 with a ``ProvisioningResponsePayload`` (checked against the schema beside
the code), a vendor's refusal 422, a slow vendor 503 past the deadline with the platform's
retry answered from the ledger (one provisioning), bad payloads 400 naming the field, and
50 calls waiting for their outcome beside a Pax8 webhook that is answered at once.
"""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import State
from tests.support.adapters import calls
from tests.support.cloudblue import (
    HEADER,
    OPERATIONS,
    SECRET,
    check_response,
    follow_up,
    payload,
    post,
)
from tests.support.procs import wait_until
from tests.support.stack import Stack
from vendors.example import ExampleAdapter

REQUEST_ID = "X-Fulfillment-Request-Id"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, sandbox, receiver and an example-vendor worker."""
    running = Stack(
        tmp_path_factory.mktemp("cloudblue"),
        env={"CLOUDBLUE_WEBHOOK_SECRETS": SECRET, "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "20"},
    )
    try:
        running.start_receiver()
        running.start_worker()
        yield running
    finally:
        running.stop()


def base(stack: Stack) -> str:
    return f"{stack.receiver_url}/webhooks/cloudblue"


def vendor(stack: Stack) -> ExampleAdapter:
    return ExampleAdapter(client=stack.redis())


def vendor_log(stack: Stack, request_id: str) -> list[dict[str, Any]]:
    return [p for p in vendor(stack).provisionings(False) if p["requestId"] == request_id]


def records(stack: Stack) -> set[str]:
    """Every ledger record (its name), whatever keys come and go beside it."""
    return set(stack.redis().zrange("ff:index", 0, -1))


def parameters(response: httpx.Response) -> dict[str, Any]:
    return {
        p["id"]: p.get("value", p.get("structuredValue"))
        for p in response.json()["fulfillmentParameters"]
    }


@pytest.mark.parametrize("route", ["suffix", "bare"])
def test_each_operation_through_its_suffix_and_through_the_bare_url(
    stack: Stack, route: str
) -> None:
    def send(body: dict[str, Any], suffix: str) -> httpx.Response:
        if route == "bare":
            return post(stack.http, base(stack), body)
        return post(stack.http, base(stack), body, suffix)

    names = {name: (suffix, spelled) for name, suffix, spelled in OPERATIONS}
    created = payload(names["creation"][1])
    subscription = created["subscriptionId"]
    first = send(created, names["creation"][0])
    assert first.status_code == 200, first.text
    check_response(first.json())
    vendor_id = first.json()["vendorSubscriptionId"]
    record = vendor(stack).subscription(False, subscription)
    assert record["external_id"] == vendor_id and record["status"] == "active"
    expected = {
        "limit-change": ("status", "active"),
        "stopping": ("status", "suspended"),
        "starting": ("status", "active"),
        "renewal": ("renewed_months", "12"),
        "removal": ("status", "cancelled"),
    }
    ids = [first.headers[REQUEST_ID]]
    for name, (field, value) in expected.items():
        suffix, spelled = names[name]
        products = [{"mpn": "SEATS", "limit": 9}] if name == "limit-change" else None
        body = follow_up(created, spelled, vendor_id)
        if products:
            body["products"] = products
        answer = send(body, suffix)
        assert answer.status_code == 200, (name, answer.text)
        check_response(answer.json())
        # The platform gets back the subscription id it sent for every later operation.
        assert answer.json()["vendorSubscriptionId"] == vendor_id, name
        assert vendor(stack).subscription(False, subscription)[field] == value, name
        ids.append(answer.headers[REQUEST_ID])
    assert json.loads(vendor(stack).subscription(False, subscription)["limits"]) == {"SEATS": 9}
    assert len(set(ids)) == 6
    assert [len(vendor_log(stack, request_id)) for request_id in ids] == [1] * 6
    for request_id in ids:  # the answer comes with the outcome; "reported" follows at once
        stack.wait_state(Ref(Scope.CLOUDBLUE, request_id), "reported")


def test_a_limit_change_of_several_products_reaches_the_vendor_whole(stack: Stack) -> None:
    created = payload(
        "creation",
        products=[
            {"mpn": "SEATS", "limit": 5},
            {"mpn": "STORAGE", "resourceTypeId": 7, "limit": 50},
        ],
    )
    first = post(stack.http, base(stack), created, "create")
    assert first.status_code == 200, first.text
    change = follow_up(created, "limitChange", first.json()["vendorSubscriptionId"])
    change["products"] = [
        {"mpn": "SEATS", "limit": 25},
        {"mpn": "STORAGE", "resourceTypeId": 7, "limit": 200},
        {"resourceTypeId": 8, "limit": -1, "name": {"en_US": "Backups"}},
    ]
    answer = post(stack.http, base(stack), change, "limit-change")
    assert answer.status_code == 200, answer.text
    check_response(answer.json())
    limits = {"SEATS": 25, "STORAGE": 200, "resource type 8": -1}
    assert parameters(answer)["limits"] == limits
    stored = vendor(stack).subscription(False, created["subscriptionId"])
    assert json.loads(stored["limits"]) == limits


def test_a_vendor_refusal_is_422_with_its_message_and_so_is_its_retry(stack: Stack) -> None:
    body = payload("creation", domain=None)
    refused = post(stack.http, base(stack), body, "create")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"].startswith("The company has no domain")
    again = post(stack.http, base(stack), body, "create")
    assert again.status_code == 422 and again.json() == refused.json()
    ref = Ref(Scope.CLOUDBLUE, refused.headers[REQUEST_ID])
    assert again.headers[REQUEST_ID] == ref.id
    claims = [entry for entry in stack.ledger.history(ref) if entry["event"] == "claimed"]
    assert len(claims) == 1


def test_stop_start_stop_without_a_request_id_are_each_answered_and_applied(
    stack: Stack,
) -> None:
    created = payload("creation", request_id=None)
    first = post(stack.http, base(stack), created, "create")
    assert first.status_code == 200, first.text
    stop = follow_up(created, "stopping", first.json()["vendorSubscriptionId"])
    stop.pop("requestId")
    start = {**stop, "operation": "starting"}
    answers = [post(stack.http, base(stack), body) for body in (stop, start, stop)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [parameters(a)["status"] for a in answers] == ["suspended", "active", "suspended"]
    ids = [a.headers[REQUEST_ID] for a in answers]
    assert len(set(ids)) == 3
    assert vendor(stack).subscription(False, created["subscriptionId"])["status"] == "suspended"
    assert sum(len(vendor_log(stack, request_id)) for request_id in ids) == 3


@pytest.mark.parametrize(
    ("suffix", "body", "field"),
    [
        ("create", b"not json", "body"),
        ("create", b"[1]", "body"),
        (None, json.dumps(payload(None)).encode(), "operation"),
        (None, json.dumps(payload("teleport")).encode(), "operation"),
        ("stop", json.dumps(payload("starting")).encode(), "operation"),
        ("teleport", json.dumps(payload(None)).encode(), "operation"),
        ("create", json.dumps({**payload("creation"), "tenantId": None}).encode(), "tenantId"),
        ("create", json.dumps({**payload("creation"), "products": []}).encode(), "products"),
        (
            "create",
            json.dumps({**payload("creation"), "products": [{"mpn": "X", "limit": "5"}]}).encode(),
            "products.0.limit",
        ),
        (
            "create",
            json.dumps({**payload("creation"), "subscriptionId": "victim:history"}).encode(),
            "subscriptionId",
        ),
        (
            "stop",
            json.dumps({**payload("stopping"), "vendorSubscriptionId": "../x"}).encode(),
            "vendorSubscriptionId",
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-operation",
        "unknown-operation",
        "suffix-vs-body",
        "unknown-suffix-no-operation",
        "null-tenantId",
        "no-products",
        "string-limit",
        "subscriptionId-pattern",
        "vendorSubscriptionId-pattern",
    ],  # fmt: skip
)
def test_a_bad_call_is_400_naming_the_field_and_records_nothing(
    stack: Stack, suffix: str | None, body: bytes, field: str
) -> None:
    before = records(stack)
    answer = post(stack.http, base(stack), body, suffix)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field
    if suffix == "stop" and field == "operation":
        assert "stopping" in answer.json()["error"] and "starting" in answer.json()["error"]
    assert records(stack) == before


def test_the_credential_in_the_header_as_bearer_or_in_the_url(stack: Stack) -> None:
    host = stack.receiver_url.removeprefix("http://")
    with httpx.Client(timeout=30) as client:
        in_url = client.post(
            f"http://cloudblue:{SECRET}@{host}/webhooks/cloudblue/create",
            json=payload("creation"),
        )
        assert in_url.status_code == 200, in_url.text
        assert in_url.request.headers["Authorization"].startswith("Basic ")
        bearer = client.post(
            f"{base(stack)}/create",
            json=payload("creation"),
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert bearer.status_code == 200, bearer.text
        before = records(stack)
        for url, headers in (
            (f"http://cloudblue:wrong@{host}/webhooks/cloudblue/create", {}),
            (f"http://{SECRET}:x@{host}/webhooks/cloudblue/create", {}),
            (f"{base(stack)}/create", {"Authorization": "Bearer wrong"}),
            (f"{base(stack)}/create", {HEADER: "wrong"}),
            (f"{base(stack)}/create", {}),
        ):
            refused = client.post(url, json=payload("creation"), headers=headers)
            assert refused.status_code == 401, url
        assert records(stack) == before
    # The password was never written down by the receiver.
    assert SECRET not in stack.procs[0].log(tail=10**6)


# -- waiting -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A receiver whose CloudBlue calls wait 6 s; each test starts the worker it needs."""
    running = Stack(
        tmp_path_factory.mktemp("cloudblue-wait"),
        env={"CLOUDBLUE_WEBHOOK_SECRETS": SECRET, "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "6"},
    )
    try:
        running.start_receiver()
        yield running
    finally:
        running.stop()


def pax8_latencies(stack: Stack, sent: list[str], count: int = 20) -> list[float]:
    """Seconds each of ``count`` Pax8 webhooks took to be answered (202); their request ids
    are added to ``sent``."""
    latencies = []
    for _ in range(count):
        body = stack.sandbox_notification()
        started = time.monotonic()
        answer = stack.post_webhook(body)
        latencies.append(time.monotonic() - started)
        assert answer.status_code == 202, answer.text
        sent.append(body["provisionRequest"]["id"])
    return latencies


def _blocked(stack: Stack) -> int:
    return int(stack.redis().info("clients")["blocked_clients"])


def _spread(seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    return f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms (n={len(ms)})"


def test_fifty_waiting_calls_do_not_delay_a_pax8_webhook(idle: Stack) -> None:
    bodies = [payload("creation") for _ in range(50)]
    pax8: list[str] = []
    pax8_latencies(idle, pax8, 2)  # warm both gunicorn workers up: the first costs more
    alone = pax8_latencies(idle, pax8)
    answers: dict[int, httpx.Response] = {}
    done = threading.Event()

    def wait_for(index: int) -> None:
        with httpx.Client(timeout=30) as client:
            answers[index] = post(client, base(idle), bodies[index], "create")
        if len(answers) == len(bodies):
            done.set()

    pool = ThreadPoolExecutor(len(bodies))
    futures = [pool.submit(wait_for, index) for index in range(len(bodies))]
    try:
        wait_until(
            lambda: len(idle.ledger.in_state(State.QUEUED)) >= len(bodies),
            10,
            message=lambda: f"{len(idle.ledger.in_state(State.QUEUED))} of 50 recorded",
        )
        # Recorded, and each blocked on its outcome list (Redis counts the blocked clients;
        # the receiver's step re-blocks every second, so look a few times).
        wait_until(
            lambda: _blocked(idle) >= len(bodies),
            10,
            interval=0.01,
            message=lambda: f"{_blocked(idle)} of 50 blocked on Redis",
        )
        # All 50 are waiting on Redis: now Pax8 and a probe, each timed.
        latencies = pax8_latencies(idle, pax8)
        started = time.monotonic()
        assert idle.http.get(f"{idle.receiver_url}/healthz").status_code == 200
        health = time.monotonic() - started
        assert answers == {}, "a waiting call was answered before its deadline"
        print(
            f"[cloudblue] Pax8 webhook answered in {_spread(alone)} alone, "
            f"{_spread(latencies)} beside 50 waiting calls; /healthz {1000 * health:.1f} ms"
        )
        # A functional bound: answered while they wait, not after (they wait 6 s).
        assert max(latencies) < 1.0 and health < 1.0
        assert done.wait(20), f"only {len(answers)} of 50 answered"
    finally:
        pool.shutdown(wait=True)
    for future in futures:
        future.result()
    assert {answer.status_code for answer in answers.values()} == {503}
    assert {answer.headers["Retry-After"] for answer in answers.values()} == {"5"}
    # A worker comes; the platform retries each call: every one answered with its outcome,
    # provisioned once.
    worker = idle.start_worker("worker-after-wait")
    try:

        def retry(body: dict[str, Any]) -> httpx.Response:
            with httpx.Client(timeout=30) as client:
                return post(client, base(idle), body, "create")

        with ThreadPoolExecutor(10) as retries:
            again = list(retries.map(retry, bodies))
        assert [a.status_code for a in again] == [200] * 50, [
            a.text for a in again if a.status_code != 200
        ]
        for first, retry in zip((answers[i] for i in range(50)), again, strict=True):
            assert retry.headers[REQUEST_ID] == first.headers[REQUEST_ID]
            check_response(retry.json())
        provisioned = [vendor_log(idle, a.headers[REQUEST_ID]) for a in again]
        assert [len(entries) for entries in provisioned] == [1] * 50
        # The Pax8 orders are fulfilled too, so no message is left for the next test's worker.
        for request_id in pax8:
            idle.wait_state(request_id, "reported")
    finally:
        worker.stop()


def test_a_slow_vendor_past_the_deadline_is_503_and_the_retry_is_answered_once(
    idle: Stack,
) -> None:
    # This worker must see this test's order only (a leftover would make it wait 9 s more).
    assert idle.redis().llen("fulfillment.net_new") == 0
    worker = idle.start_worker(
        "worker-slow",
        VENDOR_ADAPTER="tests.support.adapters:SlowAdapter",
        SLOW_ADAPTER_SECONDS="9",
    )
    try:
        body = payload("creation", subscription_id=str(uuid.uuid4()))
        late = post(idle.http, base(idle), body, "create")
        assert late.status_code == 503, late.text
        assert late.headers["Retry-After"] == "5"
        request_id = late.headers[REQUEST_ID]
        assert idle.record(Ref(Scope.CLOUDBLUE, request_id)).state == "provisioning"  # type: ignore[union-attr]
        # The platform retries while the vendor still works: the same record, waited for.
        answer = wait_until(
            lambda: (a := post(idle.http, base(idle), body, "create")).status_code == 200 and a,
            40,
            interval=0,
            message="the retry never got the outcome",
        )
        assert answer.headers[REQUEST_ID] == request_id
        assert answer.json()["vendorSubscriptionId"] == f"slow-{request_id[:8]}"
        check_response(answer.json())
        # And once more after it is done: straight from the ledger.
        done = post(idle.http, base(idle), body, "create")
        assert done.status_code == 200 and done.json() == answer.json()
        assert len(calls(idle.redis(), request_id, "started")) == 1
    finally:
        worker.stop()


def test_a_receiver_told_to_stop_answers_every_call_still_waiting(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A deploy stops the receiver (SIGTERM to gunicorn's master) while calls wait for
    their outcome longer than the 20 s graceful timeout it once had: each is still answered
    (503 with Retry-After at its deadline: no worker runs) and then the receiver exits."""
    wait = 22.0
    stack = Stack(
        tmp_path_factory.mktemp("cloudblue-stop"),
        env={"CLOUDBLUE_WEBHOOK_SECRETS": SECRET, "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": str(wait)},
    )
    try:
        web = stack.start_receiver()
        bodies = [payload("creation") for _ in range(3)]

        def call(body: dict[str, Any]) -> httpx.Response | Exception:
            try:
                with httpx.Client(timeout=wait + 20) as client:
                    return post(client, base(stack), body, "create")
            except httpx.HTTPError as exc:  # a reset connection: what must not happen
                return exc

        with ThreadPoolExecutor(len(bodies)) as pool:
            futures = [pool.submit(call, body) for body in bodies]
            wait_until(
                lambda: _blocked(stack) >= len(bodies),
                10,
                interval=0.01,
                message=lambda: f"{_blocked(stack)} of {len(bodies)} waiting",
            )
            told = time.monotonic()
            web.signal(signal.SIGTERM)
            answers = [future.result() for future in futures]
        answered = time.monotonic() - told
        for answer in answers:
            assert isinstance(answer, httpx.Response), f"dropped on the stop: {answer!r}"
            assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer
            assert answer.headers[REQUEST_ID]
        # The receiver stops once the last call is answered, within the graceful timeout.
        wait_until(lambda: not web.alive(), 15, message=lambda: web.describe())
        stopped = time.monotonic() - told
        print(
            f"[cloudblue] stop: waiting calls answered {answered:.1f}s after SIGTERM, "
            f"receiver exited at {stopped:.1f}s"
        )
        assert answered > 20.0, "answered before the old graceful timeout: the test proves nothing"
        assert web.popen.returncode == 0, web.describe()
    finally:
        stack.stop()
