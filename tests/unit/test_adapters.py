"""The vendor adapters: ``http`` against a vendor stub, ``example`` against a real Redis, loading.

Unit-level (no Celery): each adapter is called with an :class:`Order` as a worker would.
The worker-level routing of adapters is in ``test_adapter_routing.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cli.redis_server import RedisServer, free_port
from config.settings import ConfigError, explicit_settings
from pax8.models import ProvisionAttempt, ProvisionDetail, ProvisionRequest, RequestType
from tests.support.vendor_stub import Script, VendorStub
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.errors import (
    PermanentVendorError,
    TransientVendorError,
    VendorContractError,
    VendorNoAnswer,
)
from vendors.example import ExampleAdapter
from vendors.http import KEEPALIVE_SECONDS, HttpAdapter
from vendors.loader import Adapters, adapter_class


def make_order(
    kind: RequestType = RequestType.NET_NEW,
    *,
    simulation: bool = False,
    detail_id: str | None = None,
    details: dict[str, Any] | None = None,
    generation: int = 0,
    **request: Any,
) -> Order:
    request.setdefault("id", str(uuid.uuid4()))
    request.setdefault("subscription_id", str(uuid.uuid4()))
    request.setdefault("company_id", str(uuid.uuid4()))
    request.setdefault("company_domain", f"{uuid.uuid4().hex[:8]}.example.com")
    detail = ProvisionDetail(id=detail_id or str(uuid.uuid4()), details=details or {})
    return Order(
        type=kind,
        request=ProvisionRequest(type=kind, **request),
        detail=detail,
        attempt=ProvisionAttempt(id=str(uuid.uuid4()), status="Acknowledged"),
        is_simulation=simulation,
        raw={},
        generation=generation,
    )


# -- http ----------------------------------------------------------------------------------


@pytest.fixture
def vendor() -> Iterator[VendorStub]:
    with VendorStub(token="vendor-token") as stub:
        yield stub


@pytest.fixture
def http_adapter(vendor: VendorStub) -> Iterator[HttpAdapter]:
    adapter = HttpAdapter(url=vendor.url, token="vendor-token", timeout=1.0)
    yield adapter
    adapter.close()


def test_http_success_carries_the_vendors_ids(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    vendor.then(
        Script(
            body={"subscriptionId": "acme-123", "companyId": "tenant_9", "metadata": {"seats": 5}}
        )
    )
    order = make_order()
    result = http_adapter.handle(order)
    assert result == Provisioned(
        subscription_id="acme-123", company_id="tenant_9", metadata={"seats": 5}
    )
    (call,) = vendor.calls
    assert call.headers["authorization"] == "Bearer vendor-token"
    assert call.headers["idempotency-key"] == order.idempotency_key
    assert call.order["type"] == "NetNew"
    assert call.order["provisionRequest"]["companyDomain"] == order.request.company_domain


def test_http_keeps_a_connection_for_the_next_call_but_not_past_the_keepalive() -> None:
    # Kept for the next call that comes soon (as under load); dropped once idle past
    # KEEPALIVE_SECONDS, before a server with a 2 s idle timeout (gunicorn's) closes it.
    with VendorStub(token="vendor-token", keep_alive=True) as stub:
        adapter = HttpAdapter(url=stub.url, token="vendor-token", timeout=2.0)
        try:
            adapter.handle(make_order())
            adapter.handle(make_order())
            assert stub.connections == 1
            time.sleep(KEEPALIVE_SECONDS + 0.5)  # the idle time is what is tested
            adapter.handle(make_order())
            assert stub.connections == 2
        finally:
            adapter.close()
    assert KEEPALIVE_SECONDS < 2.0


def test_http_4xx_is_permanent_with_the_bodys_message(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    vendor.then(Script(status=400, body={"message": "Seat count exceeds the plan."}))
    with pytest.raises(PermanentVendorError, match="Seat count exceeds the plan."):
        http_adapter.handle(make_order())


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (503, "3"), (429, "7")])
def test_http_5xx_and_429_are_transient(
    vendor: VendorStub, http_adapter: HttpAdapter, status: int, retry_after: str | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    vendor.then(Script(status=status, body={"message": "busy"}, headers=headers))
    with pytest.raises(TransientVendorError) as caught:
        http_adapter.handle(make_order())
    assert caught.value.retry_after == (float(retry_after) if retry_after else None)


def test_http_timeout_and_refused_are_transient(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    vendor.then(Script(delay_before=2.0))
    with pytest.raises(TransientVendorError, match="timed out"):
        http_adapter.handle(make_order())
    closed = HttpAdapter(url=f"http://127.0.0.1:{free_port()}/x", timeout=1.0)
    try:
        with pytest.raises(TransientVendorError, match="unreachable"):
            closed.handle(make_order())
    finally:
        closed.close()


def test_http_no_answer_is_told_from_an_answer(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    # A timeout may leave the call running at the vendor; a refused connection sent nothing.
    vendor.then(Script(delay_before=2.0))
    with pytest.raises(VendorNoAnswer):
        http_adapter.handle(make_order())
    closed = HttpAdapter(url=f"http://127.0.0.1:{free_port()}/x", timeout=1.0)
    try:
        with pytest.raises(TransientVendorError) as caught:
            closed.handle(make_order())
        assert not isinstance(caught.value, VendorNoAnswer)
    finally:
        closed.close()


def test_http_deadline_is_total_a_trickled_answer_cannot_outlive_it(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    # One byte every 0.1 s: every read is well inside httpx's per-read timeout (1 s), and the
    # answer would take about 9 s; the call must end at its 1 s deadline all the same.
    vendor.then(Script(trickle=0.1))
    assert http_adapter.call_deadline_seconds == 1.0
    started = time.monotonic()
    with pytest.raises(VendorNoAnswer, match="within 1s"):
        http_adapter.handle(make_order())
    elapsed = time.monotonic() - started
    print(f"trickled answer cut after {elapsed:.2f}s (deadline 1s)")
    assert elapsed < 4.0  # far below the 9 s the trickle takes: the deadline held
    # The connection is not poisoned: the next call goes through.
    assert http_adapter.handle(make_order()).subscription_id


def test_http_honours_the_environments_proxy_and_keeps_its_deadline_through_it(
    vendor: VendorStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stub plays the proxy (an HTTP proxy gets the request in absolute form): a call to a
    # host that does not exist reaches it only through HTTP_PROXY.
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{vendor.port}")
    adapter = HttpAdapter(url="http://vendor.invalid/orders", token="vendor-token", timeout=1.0)
    try:
        assert adapter.handle(make_order()).subscription_id
        vendor.then(Script(trickle=0.1))
        started = time.monotonic()
        with pytest.raises(VendorNoAnswer):
            adapter.handle(make_order())
        assert time.monotonic() - started < 4.0  # the deadline held through the proxy
    finally:
        adapter.close()


def test_http_409_is_transient_retry_after_bounded_by_the_deadline(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    for retry_after, expected in (("0.5", 0.5), ("3600", 1.0), (None, None)):
        headers = {"Retry-After": retry_after} if retry_after else {}
        vendor.then(Script(status=409, body={"message": "in progress"}, headers=headers))
        with pytest.raises(TransientVendorError, match="409") as caught:
            http_adapter.handle(make_order())
        assert not isinstance(caught.value, VendorNoAnswer)  # an answer: the call is over
        assert caught.value.retry_after == expected


def test_http_422_is_a_contract_error_a_bug_to_report(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    vendor.then(Script(status=422, body={"message": "Key reused with another body."}))
    order = make_order()
    with pytest.raises(VendorContractError) as caught:
        http_adapter.handle(order)
    message = caught.value.message
    assert isinstance(caught.value, PermanentVendorError)  # reported as Fail
    assert "bug" in message and order.request_id in message and "HTTP 422" in message
    assert message.endswith("The vendor said: Key reused with another body.")
    assert len(message) <= 500


def test_http_repeat_with_same_key_is_harmless(
    vendor: VendorStub, http_adapter: HttpAdapter
) -> None:
    order = make_order()
    first = http_adapter.handle(order)
    second = http_adapter.handle(order)
    assert first == second
    assert len(vendor.calls) == 2 and len(vendor.provisionings()) == 1
    # A new detail, or an operator's replay (new generation), is a new key: real new work.
    new_detail = make_order(id=order.request_id, detail_id=str(uuid.uuid4()))
    replayed = make_order(id=order.request_id, detail_id=order.detail_id, generation=1)
    keys = {order.idempotency_key, new_detail.idempotency_key, replayed.idempotency_key}
    assert len(keys) == 3


def test_invalid_external_id_is_refused_before_pax8_sees_it() -> None:
    with pytest.raises(ValueError, match="externalProvisionerSubscriptionId"):
        Provisioned(subscription_id="has space").external_ids()


# -- example -----------------------------------------------------------------------------


@pytest.fixture
def example(redis_client: redis.Redis) -> ExampleAdapter:
    return ExampleAdapter(client=redis_client)


def test_example_net_new_then_domain_taken(example: ExampleAdapter) -> None:
    first = make_order(company_domain="Acme.example.com", quantity=2)
    result = example.handle(first)
    assert result.subscription_id and result.subscription_id.startswith("sub-")
    assert result.metadata["quantity"] == 2
    other = make_order(company_domain="acme.example.com")
    with pytest.raises(PermanentVendorError, match="already in use by another customer"):
        example.handle(other)
    # The same company may add another subscription on its domain.
    same_company = make_order(
        company_domain="acme.example.com", company_id=first.request.company_id
    )
    assert example.handle(same_company).company_id == result.company_id


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        (RequestType.NET_NEW, {"company_domain": None}, "no domain"),
        (RequestType.NET_NEW, {"quantity": 0}, "at least 1"),
        (RequestType.UPDATE, {"quantity": 3}, "unknown to the vendor"),
        (RequestType.UPDATE, {"quantity": None}, "at least 1"),
        (RequestType.DEPROVISION, {}, "unknown to the vendor"),
        (RequestType.CHANGE_PRODUCT, {"product_id": "p2"}, "unknown to the vendor"),
        (RequestType.TRIAL_CONVERT, {}, "unknown to the vendor"),
        (RequestType.RENEWAL, {}, "unknown to the vendor"),
        (RequestType.PARTNER_ENROLLMENT, {"partner_id": None}, "no partnerId"),
    ],
)
def test_example_refuses_for_honest_reasons(
    example: ExampleAdapter, kind: RequestType, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentVendorError, match=message):
        example.handle(make_order(kind, **fields))


def test_example_bad_admin_email(example: ExampleAdapter) -> None:
    with pytest.raises(PermanentVendorError, match="not a valid email"):
        example.handle(make_order(details={"adminEmail": "nope"}))


def test_example_subscription_lifecycle(example: ExampleAdapter) -> None:
    sub = str(uuid.uuid4())
    example.handle(make_order(RequestType.TRIAL_CREATE, subscription_id=sub, product_id="p-1"))
    assert example.subscription(False, sub)["status"] == "trial"
    with pytest.raises(PermanentVendorError, match="only an active subscription"):
        example.handle(make_order(RequestType.RENEWAL, subscription_id=sub))
    example.handle(make_order(RequestType.TRIAL_CONVERT, subscription_id=sub))
    with pytest.raises(PermanentVendorError, match="not a trial"):
        example.handle(make_order(RequestType.TRIAL_CONVERT, subscription_id=sub))
    updated = example.handle(make_order(RequestType.UPDATE, subscription_id=sub, quantity=9))
    assert updated.metadata["quantity"] == 9
    product = example.subscription(False, sub)["product_id"]
    with pytest.raises(PermanentVendorError, match="already has product"):
        example.handle(
            make_order(
                RequestType.CHANGE_PRODUCT, subscription_id=sub, product_id=product or "none"
            )
        )
    example.handle(make_order(RequestType.CHANGE_PRODUCT, subscription_id=sub, product_id="p-2"))
    example.handle(make_order(RequestType.DEPROVISION, subscription_id=sub))
    with pytest.raises(PermanentVendorError, match="cancelled already"):
        example.handle(make_order(RequestType.UPDATE, subscription_id=sub, quantity=1))


def test_example_is_idempotent_per_key(example: ExampleAdapter) -> None:
    order = make_order()
    before = len(example.provisionings(False))
    first = example.handle(order)
    assert example.handle(order) == first
    assert len(example.provisionings(False)) == before + 1
    refused = make_order(RequestType.UPDATE)
    for _ in range(2):
        with pytest.raises(PermanentVendorError):
            example.handle(refused)


def test_example_keeps_simulation_apart(example: ExampleAdapter) -> None:
    sub = str(uuid.uuid4())
    example.handle(make_order(simulation=True, subscription_id=sub))
    assert example.subscription(True, sub)
    assert not example.subscription(False, sub)
    with pytest.raises(PermanentVendorError, match="unknown"):
        example.handle(make_order(RequestType.UPDATE, subscription_id=sub, quantity=2))


def test_example_makes_two_redis_round_trips_an_order(redis_server: RedisServer) -> None:
    # Counted exactly: every packed send is one round trip (a pipeline is one). It was six
    # with WATCH/MULTI/EXEC: the handler's GET, then WATCH, GET, the rule's reads, EXEC.
    sent: list[bytes] = []

    class Counting(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent.append(bytes(command if isinstance(command, bytes) else b"".join(command)))
            super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    client = redis.Redis.from_url(
        redis_server.url, decode_responses=True, connection_class=Counting
    )
    example = ExampleAdapter(client=client)
    example.handle(make_order())  # connects and loads the commit script
    sub = str(uuid.uuid4())
    counts = []
    for order in (
        make_order(subscription_id=sub),  # NetNew: read, commit
        make_order(RequestType.UPDATE, subscription_id=sub, quantity=4),  # read, commit
        make_order(RequestType.RENEWAL, subscription_id=str(uuid.uuid4())),  # refused by state
    ):
        sent.clear()
        try:
            example.handle(order)
        except PermanentVendorError:
            pass
        counts.append(len(sent))
        sent.clear()
        try:
            example.handle(order)  # the repeat: the stored outcome, one read
        except PermanentVendorError:
            pass
        counts.append(len(sent))
    assert counts == [2, 1, 2, 1, 2, 1]
    client.close()


def test_example_decides_again_when_another_order_changed_what_it_read(
    redis_client: redis.Redis,
) -> None:
    # Two companies claim one domain at once: the second commits between the first one's
    # read and its commit. The first must see the change, decide again and refuse.
    domain = f"{uuid.uuid4().hex[:8]}.example.com"
    rival, rival_order = ExampleAdapter(client=redis_client), make_order(company_domain=domain)

    class Raced(ExampleAdapter):
        raced = False

        def _store(self, *args: Any, **kwargs: Any) -> list[str]:
            if not self.raced:  # the first commit only: the rival's lands just before it
                self.raced = True
                rival.handle(rival_order)
            return super()._store(*args, **kwargs)

    raced = Raced(client=redis_client)
    before = len(raced.provisionings(False))
    order = make_order(company_domain=domain)
    with pytest.raises(PermanentVendorError, match="already in use by another customer"):
        raced.handle(order)
    changes = raced.provisionings(False)[before:]
    assert [c["requestId"] for c in changes] == [rival_order.request_id]
    owner = redis_client.hgetall(f"vendor:example:prod:domain:{domain}")
    assert owner["company_id"] == rival_order.request.company_id
    with pytest.raises(PermanentVendorError, match="already in use"):  # stored: same refusal
        ExampleAdapter(client=redis_client).handle(order)


# -- loading -----------------------------------------------------------------------------


class Custom(VendorAdapter):
    """A vendor's own adapter, loaded by ``package.module:Class``."""

    def net_new(self, order: Order) -> Provisioned:
        return Provisioned(subscription_id="custom-1")


def test_loader_resolves_specs(tmp_path: Path) -> None:
    assert adapter_class("example") is ExampleAdapter
    assert adapter_class("http") is HttpAdapter
    assert adapter_class("tests.unit.test_adapters:Custom") is Custom
    with pytest.raises(ConfigError) as caught:
        adapter_class("nope", "SIMULATION_VENDOR_ADAPTER")
    assert caught.value.variable == "SIMULATION_VENDOR_ADAPTER"
    with pytest.raises(ConfigError, match="cannot import"):
        adapter_class("no_such_module:Thing")
    with pytest.raises(ConfigError, match="not a subclass"):
        adapter_class("pathlib:Path")


def test_unsupported_types_fail_with_a_clear_message() -> None:
    custom = Custom()
    assert custom.handle(make_order()).subscription_id == "custom-1"
    with pytest.raises(PermanentVendorError, match="does not support Renewal orders"):
        custom.handle(make_order(RequestType.RENEWAL))


def test_adapters_share_one_instance_per_spec(tmp_path: Path) -> None:
    settings = explicit_settings(
        vendor_adapter="tests.unit.test_adapters:Custom",
        simulation_vendor_adapter="http",
        vendor_http_url="http://127.0.0.1:9/x",
    )
    adapters = Adapters(settings)
    adapters.check()
    try:
        assert isinstance(adapters.for_order(False), Custom)
        assert isinstance(adapters.for_order(True), HttpAdapter)
        assert adapters.for_order(False) is adapters.for_order(False)
    finally:
        adapters.close()
    same = Adapters(explicit_settings(vendor_adapter="tests.unit.test_adapters:Custom"))
    assert same.for_order(True) is same.for_order(False)
