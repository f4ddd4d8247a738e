"""Orders routed by product, in-process: the decision, the ledger keeping it, the worker calling
the backend it names (and no other), and what an order no route takes gets.

A real redis-server and the sandbox's Pax8 in-process (``conftest``); the backends are
:class:`Recorder` instances, one per route, built from the routes file as a worker builds
them.
"""

from __future__ import annotations

import base64
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from config.routes import DEFAULT_ROUTE, Backend, load_routes
from config.settings import ConfigError, explicit_settings
from fulfillment.doctor import store as doctor_store
from fulfillment.doctor.context import Doctor
from fulfillment.doctor.metrics import DoctorCollector
from fulfillment.doctor.result import Status
from fulfillment.doctor.run import run_checks
from fulfillment.intake.accept import accept
from fulfillment.intake.notifications import parse_pax8
from fulfillment.intake.routing import UNROUTED, Unrouted, decide
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import Accepted, Claimed, State
from fulfillment.names import route_queue
from fulfillment.services import Services
from fulfillment.usage.context import usage_context
from fulfillment.usage.models import Subscription
from fulfillment.workflow.outcomes import Next
from fulfillment.workflow.provisioning import fulfil
from tests.support.sandbox import notification_from
from tests.support.stack import notification, unique_domain
from tests.unit.conftest import Pax8World, RecordingPublisher, ServicesFactory
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.example import ExampleAdapter
from vendors.http import HttpAdapter
from vendors.loader import Adapters
from worker.config import all_queues, celery_config
from worker.factory import create_celery
from worker.publish import CeleryPublisher

P1, P2, P3, P4 = (str(uuid.uuid4()) for _ in range(4))
CALLS: list[tuple[str, bool, Order]] = []
"""(route, simulation, order) of every call any :class:`Recorder` took."""


class Recorder(VendorAdapter):
    """A backend that provisions everything and notes which route's instance took it."""

    def handle(self, order: Order) -> Provisioned:
        assert self.backend is not None
        CALLS.append((self.backend.route, self.backend.simulation, order))
        return Provisioned(subscription_id=f"{self.backend.route}-{order.request_id[:8]}")


RECORDER = "tests.unit.test_routing:Recorder"


def routes_file(tmp_path: Path, text: str, name: str = "routes.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def two_routes(tmp_path: Path, name: str = "routes.toml", swap: bool = False) -> Path:
    """Routes ``one`` (P1, MPN ONE) and ``two`` (P2, MPN TWO); unknown products refused.
    ``swap``: P1 belongs to ``two`` instead (a routes file edited)."""
    first, second = (P2, P1) if swap else (P1, P2)
    return routes_file(
        tmp_path,
        f"""
        unknown_products = "refuse"
        [routes.one]
        products = ["{first}"]
        mpns = ["ONE"]
        adapter = "{RECORDER}"
        [routes.two]
        products = ["{second}", "{P4}"]
        mpns = ["TWO"]
        adapter = "{RECORDER}"
        """,
        name,
    )


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def order(pax8: Pax8World, services: Services, **request: Any) -> tuple[Ref, str, str]:
    """A request Pax8 holds, accepted as its webhook would be: (ref, detail id, route)."""
    request = {"type": "NetNew", "companyDomain": unique_domain(), **request}
    (created,) = pax8.bulk(1, order={"provisionRequest": request})
    notice, _ = parse_pax8(json.dumps(notification_from(pax8.request(created["id"]))).encode())
    publisher = services.publisher
    assert isinstance(publisher, RecordingPublisher)
    intake = accept(services.ledger, publisher, notice, services.settings.routes)
    assert intake.action is Accepted.PROVISION
    return Ref(Scope.PAX8, created["id"]), created["detailId"], publisher.routes[-1]


# -- the decision ---------------------------------------------------------------------------


def test_the_route_is_decided_by_the_product(tmp_path: Path) -> None:
    routes = load_routes(two_routes(tmp_path), {})
    assert decide(routes, "pax8", "NetNew", [P1]).route == "one"
    assert decide(routes, "pax8", "Update", [P2]).route == "two"
    change = decide(routes, "pax8", "ChangeProduct", [P2], [P1])
    assert (change.route, change.previous) == ("two", "one")
    unknown = decide(routes, "pax8", "NetNew", [P3])
    assert unknown.route == UNROUTED and not unknown.routed
    assert f"does not provision product {P3}" in unknown.refusal
    assert "Contact the vendor's support" in unknown.refusal
    enrollment = decide(routes, "pax8", "PartnerEnrollment", [])
    assert enrollment.route == UNROUTED and "no partner enrollments" in enrollment.refusal
    forged = decide(routes, "pax8", "NetNew", ["a product\nwith a line"])
    assert "\n" not in forged.refusal and "unexpected characters" in forged.refusal
    # CloudBlue by MPN: products without one do not count; different backends are refused.
    assert decide(routes, "cloudblue", "NetNew", ["TWO"]).route == "two"
    mixed = decide(routes, "cloudblue", "NetNew", ["ONE", "TWO"])
    assert mixed.route == UNROUTED and "(ONE, TWO) are provisioned by different" in mixed.refusal


def test_with_a_default_route_and_without_a_routes_file(tmp_path: Path) -> None:
    text = two_routes(tmp_path).read_text().replace('unknown_products = "refuse"', "")
    routes = load_routes(routes_file(tmp_path, 'default_route = "two"\n' + text, "d.toml"), {})
    assert decide(routes, "pax8", "NetNew", [P3]).route == "two"
    assert decide(routes, "pax8", "PartnerEnrollment", []).route == "two"
    assert decide(routes, "cloudblue", "NetNew", ["ONE", "OTHER"]).route == UNROUTED
    single = explicit_settings().routes
    assert decide(single, "pax8", "NetNew", [P3]).route == DEFAULT_ROUTE
    assert decide(single, "cloudblue", "NetNew", ["A", "B"]).route == DEFAULT_ROUTE


# -- the worker calls the route's backend -------------------------------------------------


def test_each_order_goes_to_its_products_backend_and_is_reported_once(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    services = make_services(vendor_routes=two_routes(tmp_path))
    first, first_detail, first_route = order(pax8, services, productId=P1)
    second, second_detail, second_route = order(pax8, services, productId=P2)
    assert (first_route, second_route) == ("one", "two")
    assert fulfil(services, first, first_detail, "t-1", route=first_route).state is State.REPORTED
    assert fulfil(services, second, second_detail, "t-2", route=second_route).next is Next.DONE
    assert [(route, o.request_id, o.route) for route, _, o in CALLS] == [
        ("one", first.id, "one"),
        ("two", second.id, "two"),
    ]
    for ref, route in ((first, "one"), (second, "two")):
        (result,) = pax8.results(ref.id)
        assert result["status"] == "Success"
        assert result["externalProvisionerSubscriptionId"] == f"{route}-{ref.id[:8]}"
        record = services.ledger.get(ref)
        assert record is not None and record.route == route
        assert record.summary()["route"] == route


def test_a_product_no_route_takes_gets_one_fail_and_an_alert(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    services = make_services(vendor_routes=two_routes(tmp_path))
    before = REGISTRY.get_sample_value("fulfillment_orders_unrouted_total", {"source": "pax8"})
    ref, detail, route = order(pax8, services, productId=P3)
    assert route == UNROUTED
    outcome = fulfil(services, ref, detail, "t-1", route=route)
    assert outcome.next is Next.DONE and outcome.alert and isinstance(outcome.error, Unrouted)
    assert CALLS == []
    (result,) = pax8.results(ref.id)
    assert (
        result["status"] == "Fail"
        and f"does not provision product {P3}" in (result["errorMessage"])
    )
    after = REGISTRY.get_sample_value("fulfillment_orders_unrouted_total", {"source": "pax8"})
    assert (after or 0) - (before or 0) == 1
    # Once: the order is done, a redelivery changes nothing.
    assert fulfil(services, ref, detail, "t-1", route=route).state is State.REPORTED
    assert len(pax8.results(ref.id)) == 1


def test_change_product_goes_to_the_new_products_backend_with_the_previous_route(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    services = make_services(vendor_routes=two_routes(tmp_path))
    ref, detail, route = order(pax8, services, type="ChangeProduct", productId=P2, oldProductId=P1)
    assert route == "two"
    fulfil(services, ref, detail, "t-1", route=route)
    ((called, _, sent),) = CALLS
    assert (called, sent.route, sent.previous_route) == ("two", "two", "one")
    wire = sent.to_json()
    assert wire["route"] == "two" and wire["previousRoute"] == "one"
    assert wire["provisionRequest"]["oldProductId"] == P1


def test_without_a_routes_file_the_order_body_is_what_it_always_was(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services(vendor_adapter=RECORDER)
    ref, detail, route = order(pax8, services, productId=P1)
    assert route == DEFAULT_ROUTE
    fulfil(services, ref, detail, "t-1", route=route)
    ((called, _, sent),) = CALLS
    assert called == DEFAULT_ROUTE and sent.route == ""
    assert "route" not in sent.to_json() and "previousRoute" not in sent.to_json()


def test_a_routes_file_edited_mid_flight_sends_no_recorded_order_elsewhere(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    before = make_services(vendor_routes=two_routes(tmp_path))
    ref, detail, route = order(pax8, before, productId=P1)
    assert route == "one"
    # P1 moves to route two; the order's webhook is delivered again, and a worker with the
    # new file runs its (old) message.
    after = make_services(vendor_routes=two_routes(tmp_path, "edited.toml", swap=True))
    notice, _ = parse_pax8(json.dumps(notification_from(pax8.request(ref.id))).encode())
    again = accept(after.ledger, after.publisher, notice, after.settings.routes)
    assert again.action is Accepted.INFLIGHT
    outcome = fulfil(after, ref, detail, "t-1", route="two")  # a message that says otherwise
    assert outcome.state is State.REPORTED
    assert [(called, o.request_id) for called, _, o in CALLS] == [("one", ref.id)]
    record = after.ledger.get(ref)
    assert record is not None and record.route == "one"


def test_a_redelivered_notice_is_queued_on_the_route_the_record_keeps(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    before = make_services(vendor_routes=two_routes(tmp_path))
    ref, detail, _ = order(pax8, before, productId=P1)
    before.ledger.mark_dead(ref, "given up")
    after = make_services(vendor_routes=two_routes(tmp_path, "edited.toml", swap=True))
    celery = create_celery(after.settings)
    try:
        publisher = CeleryPublisher(celery, after.settings.routes)
        notice, _ = parse_pax8(json.dumps(notification_from(pax8.request(ref.id))).encode())
        notice = type(notice)(**{**notice.__dict__, "attempt_id": str(uuid.uuid4())})
        intake = accept(after.ledger, publisher, notice, after.settings.routes)
        assert intake.action is Accepted.QUEUED
        (raw,) = after.redis.lrange(route_queue("one"), 0, -1)
        assert after.redis.llen(route_queue("two")) == 0
        args, kwargs, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        assert args == [ref.id, detail] and kwargs["route"] == "one"
    finally:
        celery.close()


def test_the_ledger_refuses_a_claim_that_expects_another_route(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    services = make_services(vendor_routes=two_routes(tmp_path))
    ref, detail, _ = order(pax8, services, productId=P1)
    wrong = services.ledger.claim(ref, detail, "t-1", 60, 5, route="two")
    assert (wrong.action, wrong.route) == (Claimed.REROUTE, "one")
    record = services.ledger.get(ref)
    assert record is not None and record.state is State.QUEUED and record.claims == 0
    assert services.ledger.claim(ref, detail, "t-1", 60, 5, route="one").action is Claimed.CLAIMED


def test_a_record_from_before_routes_takes_the_route_its_product_has_and_keeps_it(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    services = make_services(vendor_routes=two_routes(tmp_path))
    ref, detail, _ = order(pax8, services, productId=P2)
    # As 0.1.0 wrote it: no route fields; its message carries no route either.
    services.redis.hdel(services.ledger.keys.record(ref), "route", "previous_route")
    assert fulfil(services, ref, detail, "t-1", route=None).state is State.REPORTED
    assert [called for called, _, _ in CALLS] == ["two"]
    record = services.ledger.get(ref)
    assert record is not None and record.route == "two"


def test_an_old_message_for_a_route_served_elsewhere_is_handed_to_its_queue(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    services = make_services(vendor_routes=two_routes(tmp_path), worker_exclude_routes="one")
    ref, detail, _ = order(pax8, services, productId=P1)
    publisher = services.publisher
    assert isinstance(publisher, RecordingPublisher)
    outcome = fulfil(services, ref, detail, "t-1", route=None)
    assert outcome.next is Next.DONE and outcome.reason == f"handed to {route_queue('one')}"
    assert CALLS == [] and publisher.routes[-1] == "one"
    record = services.ledger.get(ref)
    assert record is not None and record.state is State.QUEUED and record.claims == 0


def test_a_route_gone_from_the_file_holds_its_orders_with_an_alert_naming_the_backend(
    make_services: ServicesFactory, pax8: Pax8World, tmp_path: Path
) -> None:
    before = make_services(vendor_routes=two_routes(tmp_path))
    ref, detail, route = order(pax8, before, productId=P1)
    only_two = routes_file(
        tmp_path,
        f"""
        default_route = "two"
        [routes.two]
        products = ["{P1}", "{P2}"]
        adapter = "{RECORDER}"
        """,
        "shrunk.toml",
    )
    after = make_services(vendor_routes=only_two)
    outcome = fulfil(after, ref, detail, "t-1", route=route)
    assert outcome.next is Next.RETRY and outcome.alert and outcome.backend == "one"
    assert outcome.reason.startswith("backend one: this order was recorded for route one")
    assert CALLS == [] and pax8.results(ref.id) == []
    record = after.ledger.get(ref)
    assert record is not None and record.state is State.QUEUED and record.route == "one"


# -- publishing ---------------------------------------------------------------------------


def test_each_route_of_a_file_has_a_queue_and_every_queue_is_declared(tmp_path: Path) -> None:
    settings = explicit_settings(vendor_routes=two_routes(tmp_path))
    assert all_queues(settings)[-2:] == (route_queue("one"), route_queue("two"))
    declared = [queue.name for queue in celery_config(settings)["task_queues"]]
    assert declared == list(all_queues(settings))
    celery = create_celery(settings)
    try:
        publisher = CeleryPublisher(celery, settings.routes)
        assert publisher.queue("NetNew", "one") == "fulfillment.route.one"
        assert publisher.queue("NetNew", UNROUTED) == "fulfillment.net_new"
        assert publisher.queue("Update", "gone") == "fulfillment.update"
        single = explicit_settings()
        assert route_queue("default") not in all_queues(single)
        assert CeleryPublisher(celery, single.routes).queue("NetNew", "default") == (
            "fulfillment.net_new"
        )
    finally:
        celery.close()


# -- adapters ------------------------------------------------------------------------------


def test_adapters_are_built_per_route_and_a_bad_one_names_the_file_and_route(
    tmp_path: Path,
) -> None:
    path = routes_file(
        tmp_path,
        f"""
        default_route = "one"
        [routes.one]
        adapter = "{RECORDER}"
        [routes.two]
        adapter = "{RECORDER}"
        [routes.two.simulation]
        adapter = "example"
        [routes.web]
        adapter = "http"
        url = "http://127.0.0.1:9/orders"
        timeout_seconds = 7
        """,
    )
    settings = explicit_settings(vendor_routes=path, vendor_http_token="the-global-token")
    adapters = Adapters(settings)
    one, two = adapters.for_route("one", False), adapters.for_route("two", False)
    assert one is not two and adapters.for_route("one", True) is one
    assert isinstance(adapters.for_route("two", True), ExampleAdapter)
    web = adapters.for_route("web", False)
    assert isinstance(web, HttpAdapter) and web.timeout == 7.0
    assert "authorization" not in web._http.headers  # noqa: SLF001 - no VENDOR_HTTP_TOKEN
    assert adapters.call_deadline("web", False) == 7.0
    with pytest.raises(KeyError):
        adapters.for_route("three", False)
    adapters.close()
    broken = routes_file(
        tmp_path,
        'default_route = "x"\n[routes.x]\nadapter = "tests.nowhere:Nothing"',
        "broken.toml",
    )
    with pytest.raises(ConfigError) as caught:
        Adapters(explicit_settings(vendor_routes=broken)).check()
    assert str(caught.value).startswith(
        f"VENDOR_ROUTES: {broken}: route x: production: cannot import 'tests.nowhere'"
    )


def test_the_example_vendor_of_each_route_is_a_back_office_of_its_own(redis_url: str) -> None:
    settings = explicit_settings(redis_url=redis_url)
    default = Backend(DEFAULT_ROUTE, False, "example")
    archive = Backend("archive", False, "example")
    assert ExampleAdapter.for_backend(settings, default).namespace(False) == "vendor:example:prod"
    adapter = ExampleAdapter.for_backend(settings, archive)
    assert adapter.namespace(True) == "vendor:example:archive:sim"
    adapter.redis.close()


def test_the_doctor_checks_each_backend_and_labels_it(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    services = make_services(vendor_routes=two_routes(tmp_path))
    report = run_checks(Doctor(services.settings, services, None))
    vendor = [check for check in report.checks if check.name == "vendor"]
    assert [(c.title, c.backend, c.status) for c in vendor] == [
        ("vendor (one)", "one", Status.OK),
        ("vendor (two)", "two", Status.OK),
    ]
    doctor_store.save(services.ledger, report)
    labels = {
        (s.labels["check"], s.labels["backend"])
        for family in DoctorCollector(services.ledger, 60.0, ("one",)).collect()
        for s in family.samples
        if s.name == "fulfillment_doctor_check_status"
    }
    # Only the routes the settings know become label values.
    assert ("vendor", "one") in labels and ("vendor", "") in labels
    assert ("redis", "") in labels and not any(backend == "two" for _, backend in labels)


def test_usage_goes_to_the_backend_of_the_subscriptions_product(tmp_path: Path) -> None:
    settings = explicit_settings(vendor_routes=two_routes(tmp_path))
    context = usage_context(Services(settings, redis_client=_unused_redis()))

    def sub(**fields: Any) -> Subscription:
        return Subscription(Scope.PAX8, "s-1", None, **fields)

    assert context.route_of(sub(route="two", product_id=P1)) == "two"
    assert context.route_of(sub(product_id=P1)) == "one"  # noted before routes
    assert context.route_of(sub(route="gone", product_id=P2)) == "two"
    assert context.route_of(sub(product_id=P3)) is None  # refused: no usage source


def _unused_redis() -> Any:
    class Unused:
        def close(self) -> None:
            pass

    return Unused()


def test_the_http_adapter_of_a_route_uses_the_routes_token_only() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"subscriptionId": "v-1"})

    settings = explicit_settings(vendor_http_token="the-global-token")
    backend = Backend("web", False, "http", url="https://web.example/orders", timeout_seconds=5)
    adapter = HttpAdapter.for_backend(settings, backend)
    adapter._http._transport = httpx.MockTransport(answer)  # noqa: SLF001
    body = notification(productId=P1)
    _, parsed = parse_pax8(json.dumps(body).encode())
    sent = Order(
        type=parsed.provision_request.type,  # type: ignore[arg-type]
        request=parsed.provision_request,
        detail=parsed.provision_detail,
        attempt=parsed.provision_attempt,
        is_simulation=False,
        raw=body,
        route="web",
    )
    assert adapter.handle(sent).subscription_id == "v-1"
    (request,) = seen
    assert "authorization" not in request.headers
    assert json.loads(request.content)["route"] == "web"
    adapter.close()
