"""CloudBlue calls, in-process: operation names, parsing, record identity, the response
payload, the credentials, and the typed order an adapter gets.

The receiver's answers (200 / 422 / 503) with an in-process worker are in
``test_cloudblue_receiver.py``; the same with gunicorn and celery in ``tests/test_cloudblue.py``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
import redis

from config.settings import explicit_settings
from fulfillment.cloudblue.calls import (
    CloudBlueError,
    detail_id,
    operation_named,
    parse_call,
    printable,
    record_id,
    request_type_for,
    stored_order,
)
from fulfillment.cloudblue.intake import identify
from fulfillment.cloudblue.response import fulfillment_parameters, response_payload
from fulfillment.ledger import Ledger, Record
from fulfillment.ledger.states import State
from fulfillment.workflow.orders import order_from_record
from pax8.models import RequestType
from receiver.auth import SecretChecker, basic_password, cloudblue_credentials
from tests.support.cloudblue import RESPONSE_SCHEMA, check_response, payload
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.cloudblue import Operation
from vendors.errors import PermanentVendorError
from vendors.example import ExampleAdapter

# -- operation names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "operation"),
    [
        ("creation", Operation.CREATION),
        ("Create", Operation.CREATION),
        ("createSubscription", Operation.CREATION),
        ("subscription_creation", Operation.CREATION),
        ("stop", Operation.STOPPING),
        ("Subscription stopping", Operation.STOPPING),
        ("suspend", Operation.STOPPING),
        ("start", Operation.STARTING),
        ("resume", Operation.STARTING),
        ("renew", Operation.RENEWAL),
        ("RENEWAL", Operation.RENEWAL),
        ("limit-change", Operation.LIMIT_CHANGE),
        ("Limit Change", Operation.LIMIT_CHANGE),
        ("changeSubscriptionLimits", Operation.LIMIT_CHANGE),
        ("change_limits", Operation.LIMIT_CHANGE),
        ("removal", Operation.REMOVAL),
        ("delete", Operation.REMOVAL),
        ("cancel", Operation.REMOVAL),
        ("teleport", None),
        ("", None),
        ("subscription", None),
        (7, None),
    ],
)
def test_operation_names_are_read_tolerantly(name: object, operation: Operation | None) -> None:
    assert operation_named(name) is operation


def test_each_operation_has_its_request_type_and_adapter_method() -> None:
    expected = {
        Operation.CREATION: (RequestType.NET_NEW, "net_new"),
        Operation.STOPPING: (RequestType.UPDATE, "suspend"),
        Operation.STARTING: (RequestType.UPDATE, "resume"),
        Operation.RENEWAL: (RequestType.RENEWAL, "renewal"),
        Operation.LIMIT_CHANGE: (RequestType.UPDATE, "update"),
        Operation.REMOVAL: (RequestType.DEPROVISION, "deprovision"),
    }
    for operation, (kind, method) in expected.items():
        call = parse_call(payload(operation.value))
        assert call.request_type is kind
        order = order_from_record(record_of(call_notice_record(call)))
        assert order.method == method and order.type is kind
        assert order.operation == operation.value
    trial = parse_call(payload("creation", periodTrial=True))
    assert trial.request_type is RequestType.TRIAL_CREATE
    assert request_type_for("Creation", trial=True) is RequestType.TRIAL_CREATE
    with pytest.raises(CloudBlueError) as caught:
        request_type_for("teleport")
    assert caught.value.field == "operation"


# -- parsing --------------------------------------------------------------------------------


def test_every_product_plannedDate_and_both_vendor_ids_reach_the_typed_order() -> None:
    body = payload(
        "limit change",
        products=[
            {"mpn": "SEATS", "resourceTypeId": 1001, "limit": 10, "name": {"en_US": "Seats"}},
            {"mpn": "STORAGE", "resourceTypeId": 1002, "limit": 500},
            {"resourceTypeId": 1003, "limit": -1},
        ],
        plannedDate="2027-01-01T00:00:00Z",
        vendorSubscriptionId="sub-top",
        somethingNew={"kept": True},
    )
    body["tenant"]["vendorSubscriptionId"] = "sub-tenant"
    call = parse_call(body)
    order = call.order
    assert order.operation is Operation.LIMIT_CHANGE
    assert [(p.mpn, p.resource_type_id, p.limit) for p in order.products] == [
        ("SEATS", 1001, 10),
        ("STORAGE", 1002, 500),
        (None, 1003, -1),
    ]
    assert order.planned_date == "2027-01-01T00:00:00Z"
    assert order.vendor_subscription_id == "sub-top"
    assert order.tenant_vendor_subscription_id == "sub-tenant"
    assert order.parameters == {"adminEmail": "ops@example.org"}
    # The stored payload keeps what the platform sent, unknown fields included.
    stored = json.loads(call.payload)
    assert stored["operation"] == "limit-change"
    assert stored["request"]["somethingNew"] == {"kept": True}
    again = stored_order(call.payload)
    assert again == order
    # And the http adapter's JSON carries all of it.
    wire = order.to_json()
    assert [p["limit"] for p in wire["products"]] == [10, 500, -1]
    assert wire["plannedDate"] == "2027-01-01T00:00:00Z"
    assert (wire["vendorSubscriptionId"], wire["tenantVendorSubscriptionId"]) == (
        "sub-top",
        "sub-tenant",
    )


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda body: body.pop(name)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_drop("operation"), "operation"),
        (_set("operation", "teleport"), "operation"),
        (_set("operation", 3), "operation"),
        (_drop("subscriptionId"), "subscriptionId"),
        (_set("subscriptionId", "a/b"), "subscriptionId"),
        (_set("subscriptionId", [1]), "subscriptionId"),
        (_set("tenantId", None), "tenantId"),
        (_set("tenantId", "t:1"), "tenantId"),
        (_drop("tenant"), "tenant"),
        (_set("tenant", []), "tenant"),
        (_set("products", []), "products"),
        (_set("products", {"mpn": "X"}), "products"),
        (_set("products.0", "SEATS"), "products.0"),
        (_set("products.0.limit", "5"), "products.0.limit"),
        (_set("products.0.limit", 2.5), "products.0.limit"),
        (_set("products.0.resourceTypeId", True), "products.0.resourceTypeId"),
        (_set("products.0.mpn", 7), "products.0.mpn"),
        (_set("products.0.name", {"en_US": 1}), "products.0.name.en_US"),
        (_set("requestId", "r\nforged"), "requestId"),
        (_set("requestId", {"id": 1}), "requestId"),
        (_set("vendorSubscriptionId", "../x"), "vendorSubscriptionId"),
        (_set("tenant.vendorSubscriptionId", "a b"), "tenant.vendorSubscriptionId"),
        (_set("tenant.activationParameters", "x"), "tenant.activationParameters"),
        (_set("tenant.activationParameters.0.key", 1), "tenant.activationParameters.0.key"),
        (_set("periodTrial", "yes"), "periodTrial"),
        (_set("plannedDate", 20270101), "plannedDate"),
        (_set("subscriptionNumericId", "1000123"), "subscriptionNumericId"),
    ],
)
def test_a_malformed_payload_names_the_field(
    mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = payload("creation")
    mutate(body)
    with pytest.raises(CloudBlueError) as caught:
        parse_call(body)
    assert caught.value.field == field
    assert "forged" not in caught.value.message  # never the value itself


def test_the_suffix_and_the_body_must_agree_and_a_new_name_is_kept_for_the_log() -> None:
    with pytest.raises(CloudBlueError) as caught:
        parse_call(payload("start"), Operation.STOPPING)
    assert caught.value.field == "operation"
    assert "stopping" in caught.value.message and "starting" in caught.value.message
    # The same operation in other words is no mismatch.
    assert parse_call(payload("suspend"), Operation.STOPPING).new_name is None
    # A name this version does not know: the suffix decides, the name is logged.
    call = parse_call(payload("subscriptionHalt"), Operation.STOPPING)
    assert call.operation is Operation.STOPPING and call.new_name == "subscriptionHalt"
    # No operation in the body: the suffix is enough.
    assert parse_call(payload(None), Operation.RENEWAL).operation is Operation.RENEWAL
    with pytest.raises(CloudBlueError):
        parse_call(payload(None))


def test_printable_shows_only_plain_short_names() -> None:
    assert printable("subscriptionHalt") == "'subscriptionHalt'"
    assert "not shown" in printable("halt\nlevel=ERROR")
    assert "not shown" in printable("\x1b[31m")
    assert "not shown" in printable("x" * 65)
    assert "not shown" in printable(None)


# -- which record a call is -----------------------------------------------------------------


def test_with_a_request_id_the_key_is_subscription_operation_and_request_id() -> None:
    body = payload("stopping", request_id="R-1")
    first = parse_call(body)
    key = record_id(first.order, first.fingerprint, 1)
    # A retry (even one counted later in the sequence) is the same record.
    assert record_id(parse_call(body).order, first.fingerprint, 9) == key
    # The same request id for another operation or subscription is another record.
    other_operation = parse_call({**body, "operation": "starting"})
    assert record_id(other_operation.order, other_operation.fingerprint, 1) != key
    other_subscription = parse_call({**body, "subscriptionId": "s-other"})
    assert record_id(other_subscription.order, other_subscription.fingerprint, 1) != key
    assert key.startswith("cb-") and detail_id(key).startswith("cbd-")
    assert detail_id(key) == detail_id(key)


@pytest.fixture
def ledger(redis_url: str) -> Iterator[Ledger]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield Ledger(client)
    client.close()


def test_without_a_request_id_stop_start_stop_are_three_records_and_a_retry_is_one(
    ledger: Ledger,
) -> None:
    subscription = str(uuid.uuid4())
    stop = payload("stopping", subscription_id=subscription, request_id=None)
    start = {**stop, "operation": "starting"}
    ids = [
        identify(ledger, parse_call(body)).request_id
        for body in (stop, stop, start, stop, stop)  # stop, its retry, start, stop, its retry
    ]
    assert ids[0] == ids[1] and ids[3] == ids[4]
    assert len({ids[0], ids[2], ids[3]}) == 3
    # A stop with a request id in between also separates two identical stops without one.
    other = str(uuid.uuid4())
    bare = payload("stopping", subscription_id=other, request_id=None)
    with_id = {**bare, "requestId": "R-9"}
    first, middle, last = (
        identify(ledger, parse_call(b)).request_id for b in (bare, with_id, bare)
    )
    assert len({first, middle, last}) == 3
    # Another subscription's identical call is its own record.
    elsewhere = identify(ledger, parse_call({**stop, "subscriptionId": other})).request_id
    assert elsewhere not in ids


def test_the_sequence_expires_with_the_ledger_retention(ledger: Ledger) -> None:
    subscription = str(uuid.uuid4())
    ledger.cloudblue_occurrence(subscription, "f1", keep_seconds=3600)
    ttl = ledger.redis.ttl(f"ff:cloudblue:sub:{subscription}")
    assert 3500 < int(ttl) <= 3600  # type: ignore[arg-type]
    forever = str(uuid.uuid4())
    ledger.cloudblue_occurrence(forever, "f1", keep_seconds=0)
    assert ledger.redis.ttl(f"ff:cloudblue:sub:{forever}") == -1


# -- the response payload -------------------------------------------------------------------


def test_metadata_becomes_fulfillment_parameters_of_the_platforms_type() -> None:
    parameters = fulfillment_parameters(
        {
            "tenantId": "tn-1",
            "quantity": 5,
            "trial": False,
            "limits": {"SEATS": 5},
            "regions": ["eu", "us"],
            "nothing": None,
            "fulfillmentParameters": [
                {"id": "activationUrl", "value": "https://x.example", "phase": "fulfillment"},
                {"value": "no id: skipped"},
                "not an object",
            ],
        }
    )
    assert parameters == [
        {"id": "activationUrl", "value": "https://x.example", "phase": "fulfillment"},
        {"id": "tenantId", "value": "tn-1"},
        {"id": "quantity", "value": "5"},
        {"id": "trial", "value": "false"},
        {"id": "limits", "structuredValue": {"SEATS": 5}},
        {"id": "regions", "value": '["eu", "us"]'},
    ]
    check_response({"vendorSubscriptionId": "sub-1", "fulfillmentParameters": parameters})


def test_the_schema_refuses_what_is_not_the_platforms_type() -> None:
    for wrong in (
        {"vendorSubscriptionId": 7},
        {"fulfillmentParameters": [{"id": "a", "value": 5}]},
        {"fulfillmentParameters": [{"value": "no id"}]},
        {"status": "accepted"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, RESPONSE_SCHEMA)


def test_the_vendor_id_falls_back_to_the_one_the_platform_sent() -> None:
    body = payload("stopping", vendorSubscriptionId="sub-known")
    record = call_notice_record(parse_call(body), external_ids={}, metadata={})
    assert response_payload(record_of(record)) == {
        "vendorSubscriptionId": "sub-known",
        "fulfillmentParameters": [],
    }
    record = call_notice_record(
        parse_call(body),
        external_ids={"externalProvisionerSubscriptionId": "sub-new"},
        metadata={"status": "suspended"},
    )
    answer = response_payload(record_of(record))
    assert answer["vendorSubscriptionId"] == "sub-new"
    check_response(answer)


def call_notice_record(call: Any, **fields: Any) -> dict[str, str]:
    """A ledger hash for ``call`` as if its outcome were stored (no Redis needed)."""
    request_id = record_id(call.order, call.fingerprint, 1)
    return {
        "id": request_id,
        "state": "reported",
        "type": call.request_type.value,
        "source": "cloudblue",
        "simulation": "0",
        "detail_id": detail_id(request_id),
        "attempt_id": "",
        "payload": call.payload,
        "outcome": "Success",
        "outcome_detail_id": detail_id(request_id),
        "external_ids": json.dumps(fields.get("external_ids", {})),
        "metadata": json.dumps(fields.get("metadata", {})),
    }


def record_of(data: dict[str, str]) -> Record:
    return Record.from_hash(data)


# -- credentials ----------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_credential_may_come_in_the_header_as_bearer_or_as_basic_in_the_url() -> None:
    checker = SecretChecker([_secret("old-secret"), _secret("new-secret")])
    accepted = [
        ("new-secret", None),
        ("Bearer new-secret", None),
        (None, "Bearer old-secret"),
        (None, "bearer new-secret"),
        (None, _basic("cloudblue", "new-secret")),
        (None, _basic("anyone", "old-secret")),
        ("wrong", _basic("u", "new-secret")),
    ]
    for named, authorization in accepted:
        presented = cloudblue_credentials(named, authorization)
        assert len(presented) == 3
        assert checker.check_any(presented).value == "production", (named, authorization)
    refused = [
        (None, None),
        ("", ""),
        ("old", None),
        (None, "Bearer "),
        (None, _basic("new-secret", "")),  # the user name is not the secret
        (None, "Basic not-base64!"),
        (None, "Basic " + base64.b64encode(b"no colon").decode()),
        (None, "Basic " + base64.b64encode(b"u:\xff\xfe").decode()),
        (None, "Digest new-secret"),
    ]
    for named, authorization in refused:
        assert checker.check_any(cloudblue_credentials(named, authorization)).value == "none"
    assert basic_password(base64.b64encode(b"u:p:q").decode()) == "p:q"


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


# -- the adapter ------------------------------------------------------------------------------


def cloudblue_order(operation: str, **fields: Any) -> Order:
    call = parse_call(payload(operation, **fields))
    return order_from_record(record_of(call_notice_record(call)))


def test_an_adapter_without_suspend_or_resume_fails_clearly() -> None:
    class OnlyCreates(VendorAdapter):
        def net_new(self, order: Order) -> Provisioned:
            return Provisioned(subscription_id="x-1")

    adapter = OnlyCreates()
    assert adapter.handle(cloudblue_order("creation")).subscription_id == "x-1"
    with pytest.raises(PermanentVendorError, match="cannot stop subscriptions.*suspend"):
        adapter.handle(cloudblue_order("stopping"))
    with pytest.raises(PermanentVendorError, match="cannot start.*resume"):
        adapter.handle(cloudblue_order("starting"))


@pytest.fixture
def example(redis_url: str) -> Iterator[ExampleAdapter]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield ExampleAdapter(client=client)
    client.close()


def test_the_example_vendor_stops_starts_and_keeps_every_limit(example: ExampleAdapter) -> None:
    subscription = str(uuid.uuid4())
    products = [
        {"mpn": "SEATS", "limit": 5},
        {"mpn": "STORAGE", "limit": 100},
    ]
    with pytest.raises(PermanentVendorError, match="unknown to the vendor"):
        example.handle(cloudblue_order("stopping", subscription_id=subscription))
    created = example.handle(
        cloudblue_order("creation", subscription_id=subscription, products=products)
    )
    assert created.metadata["limits"] == {"SEATS": 5, "STORAGE": 100}
    changed = example.handle(
        cloudblue_order(
            "limit-change",
            subscription_id=subscription,
            products=[{"mpn": "SEATS", "limit": 8}, {"mpn": "STORAGE", "limit": -1}],
        )
    )
    assert changed.metadata["limits"] == {"SEATS": 8, "STORAGE": -1}
    assert changed.subscription_id == created.subscription_id
    stopped = example.handle(cloudblue_order("stopping", subscription_id=subscription))
    assert stopped.metadata["status"] == "suspended"
    # Stopping a stopped subscription (a new call, not a retry) changes nothing, and succeeds.
    again = example.handle(cloudblue_order("stopping", subscription_id=subscription))
    assert again.metadata["status"] == "suspended"
    with pytest.raises(PermanentVendorError, match="only an active subscription"):
        example.handle(cloudblue_order("renewal", subscription_id=subscription))
    started = example.handle(cloudblue_order("starting", subscription_id=subscription))
    assert started.metadata["status"] == "active"
    assert example.subscription(False, subscription)["status"] == "active"
    assert example.handle(cloudblue_order("renewal", subscription_id=subscription))
    with pytest.raises(PermanentVendorError, match="must be -1 \\(unlimited\\) or more"):
        example.handle(
            cloudblue_order(
                "limit-change", subscription_id=subscription, products=[{"mpn": "X", "limit": -2}]
            )
        )
    example.handle(cloudblue_order("removal", subscription_id=subscription))
    with pytest.raises(PermanentVendorError, match="cancelled already"):
        example.handle(cloudblue_order("starting", subscription_id=subscription))


def test_a_record_state_is_read_from_the_stored_payload() -> None:
    record = record_of(call_notice_record(parse_call(payload("renew"))))
    assert record.state is State.REPORTED
    order = order_from_record(record)
    assert order.source == "cloudblue" and order.attempt is None
    assert order.request.id == record.id
    assert order.detail.details["cloudblueOperation"] == "renewal"
    assert order.raw["operation"] == "renew"  # what the platform sent, as it sent it


def test_a_record_of_the_previous_version_still_builds_its_order() -> None:
    body = payload("stop")
    data = call_notice_record(parse_call(body))
    data["payload"] = json.dumps(body)  # 0.1 kept the payload as sent
    order = order_from_record(record_of(data))
    assert order.method == "suspend" and order.raw == body


# -- the http adapter's JSON ---------------------------------------------------------------


def test_the_http_adapter_posts_the_action_and_the_whole_cloudblue_payload() -> None:
    from tests.support.vendor_stub import Script, VendorStub
    from vendors.http import HttpAdapter

    with VendorStub(token="t") as stub:
        adapter = HttpAdapter(url=stub.url, token="t", timeout=2.0)
        try:
            stub.then(Script(body={"subscriptionId": "acme-1", "metadata": {"state": "off"}}))
            order = cloudblue_order(
                "stop",
                products=[{"mpn": "SEATS", "limit": 3}, {"resourceTypeId": 9, "limit": -1}],
                plannedDate="2027-02-01",
                vendorSubscriptionId="acme-1",
            )
            result = adapter.handle(order)
        finally:
            adapter.close()
    assert result.subscription_id == "acme-1" and result.metadata == {"state": "off"}
    (sent,) = stub.calls
    assert sent.order["type"] == "Update" and sent.order["action"] == "suspend"
    assert sent.order["operation"] == "stopping" and sent.order["source"] == "cloudblue"
    cloudblue = sent.order["cloudblue"]
    assert [(p["mpn"], p["resourceTypeId"], p["limit"]) for p in cloudblue["products"]] == [
        ("SEATS", None, 3),
        (None, 9, -1),
    ]
    assert cloudblue["plannedDate"] == "2027-02-01"
    assert cloudblue["vendorSubscriptionId"] == "acme-1"
    assert cloudblue["tenantVendorSubscriptionId"] is None
    assert sent.headers["idempotency-key"] == order.idempotency_key


# -- waiting ---------------------------------------------------------------------------------


def _queued_call(ledger: Ledger) -> Any:
    from fulfillment.intake.accept import accept
    from tests.support.publisher import RecordingPublisher

    notice = identify(ledger, parse_call(payload("creation")))
    accept(ledger, RecordingPublisher(), notice, explicit_settings().routes)
    return notice


def test_a_stale_token_wakes_a_waiter_once_and_is_not_passed_on(ledger: Ledger) -> None:
    from fulfillment.cloudblue.awaiting import await_outcome

    notice = _queued_call(ledger)
    key = ledger.keys.outcome(notice.ref)
    ledger.redis.lpush(key, "1", "1", "1")  # left from an outcome before a replay
    record = await_outcome(ledger, notice.ref, timeout=0.3, step=0.1)
    assert record is not None and record.state is State.QUEUED  # not settled: the deadline
    assert ledger.redis.llen(key) == 0  # consumed, not handed on: no busy loop


def test_one_outcome_wakes_every_waiter_at_once(ledger: Ledger) -> None:
    import threading

    from fulfillment.cloudblue.awaiting import await_outcome

    notice = _queued_call(ledger)
    got: list[Record | None] = []
    # A step as long as the timeout: a waiter that is not woken by a token waits it all.
    waiters = [
        threading.Thread(
            target=lambda: got.append(await_outcome(ledger, notice.ref, timeout=20, step=20))
        )
        for _ in range(3)
    ]
    for waiter in waiters:
        waiter.start()
    wait_until_blocked(ledger, 3)
    ledger.claim(notice.ref, notice.detail_id, "task-1", 60, 5)
    ledger.finish(notice.ref, notice.detail_id, "task-1", "Success", {}, {"ok": True})
    for waiter in waiters:
        waiter.join(5)  # far below the 20 s they would wait unwoken
    assert not any(waiter.is_alive() for waiter in waiters)
    assert [r.state for r in got if r is not None] == [State.PROVISIONED] * 3


def wait_until_blocked(ledger: Ledger, count: int) -> None:
    from tests.support.procs import wait_until

    wait_until(
        lambda: int(ledger.redis.info("clients")["blocked_clients"]) >= count,  # type: ignore[index]
        10,
        interval=0.01,
    )


def test_a_pax8_outcome_pushes_no_token(ledger: Ledger) -> None:
    from fulfillment.intake.accept import accept
    from fulfillment.intake.notifications import parse_pax8
    from tests.support.publisher import RecordingPublisher
    from tests.support.stack import notification

    notice, _ = parse_pax8(json.dumps(notification()).encode())
    accept(ledger, RecordingPublisher(), notice, explicit_settings().routes)
    ledger.claim(notice.ref, notice.detail_id, "task-1", 60, 5)
    ledger.finish(notice.ref, notice.detail_id, "task-1", "Success", {}, {})
    assert not ledger.redis.exists(ledger.keys.outcome(notice.ref))
