"""The published vendor contract (``vendors/http-api.yaml``) against what the worker really does.

The document must be valid OpenAPI 3.1, and every order the worker can send must match its
schemas: real payloads of every type, from the sandbox's Pax8 (production and simulation)
and from CloudBlue, rebuilt from the ledger as a worker rebuilds them, then serialised by
``Order.to_json``. The call itself (headers) and the answers the adapter understands are
checked against the document too, so neither can drift from the other.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fulfillment.cloudblue.intake import identify, parse_cloudblue
from fulfillment.intake.accept import accept
from fulfillment.intake.notifications import parse_pax8
from fulfillment.workflow.orders import order_from_record
from pax8.models import RequestType
from tests.support.procs import ROOT
from tests.support.vendor_stub import VendorStub
from tests.unit.conftest import Pax8World, ServicesFactory
from tests.unit.test_adapters import make_order
from vendors.base import Order
from vendors.errors import PermanentVendorError, TransientVendorError
from vendors.http import HttpAdapter
from vendors.usage import UsageQuery

CONTRACT = ROOT / "vendors" / "http-api.yaml"
BASE = "urn:pax8-fulfillment:vendor-api"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(Path(CONTRACT).read_text())
    return loaded


def validator(spec: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) for one schema of the document."""
    registry: Registry[Any] = Registry().with_resource(
        BASE, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{BASE}#{pointer}"}, registry=registry, format_checker=FormatChecker()
    )


def operation(spec: dict[str, Any]) -> dict[str, Any]:
    post: dict[str, Any] = spec["paths"]["/pax8/orders"]["post"]
    return post


def test_the_contract_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    validate_openapi(spec)
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    mapping = schemas["Order"]["discriminator"]["mapping"]
    assert set(mapping) == {kind.value for kind in RequestType}  # one schema per type
    assert set(schemas["RequestType"]["enum"]) == {kind.value for kind in RequestType}


def test_the_contract_names_every_answer_the_adapter_understands(spec: dict[str, Any]) -> None:
    responses = operation(spec)["responses"]
    assert set(responses) == {"2XX", "3XX", "401", "409", "422", "429", "4XX", "5XX"}
    for status in ("409", "429", "5XX"):
        assert "Retry-After" in responses[status]["headers"]


def pax8_orders(pax8: Pax8World, make_services: ServicesFactory) -> list[Order]:
    """One real order per type and environment, as a worker rebuilds it from the ledger."""
    services = make_services()
    orders = []
    for simulation in (False, True):
        environment = "simulation" if simulation else "production"
        for kind in RequestType:
            (created,) = pax8.bulk(
                1, environment=environment, order={"provisionRequest": {"type": kind.value}}
            )
            dump = pax8.request(created["id"])
            body = {
                "isSimulation": simulation,
                "provisionRequest": dump["provisionRequest"],
                "provisionDetail": dump["details"][-1],
                "provisionAttempt": dump["attempts"][-1],
            }
            notice, _ = parse_pax8(json.dumps(body).encode())
            accept(services.ledger, services.publisher, notice, services.settings.routes)
            record = services.ledger.get(notice.ref)
            assert record is not None
            orders.append(order_from_record(record))
    return orders


def cloudblue_orders(make_services: ServicesFactory) -> list[Order]:
    """CloudBlue orders of every operation, the same way."""
    services = make_services()
    orders = []
    for operation_name in ("creation", "limit change", "stop", "start", "renewal", "removal"):
        payload = {
            "operation": operation_name,
            "requestId": f"cb-{uuid.uuid4().hex[:12]}",
            "subscriptionId": "1000123",
            "tenantId": "42",
            "tenant": {"activationParameters": [{"key": "domain", "value": "acme.example"}]},
            "customer": {"companyName": "Acme", "domain": "acme.example"},
            "products": [{"mpn": "SEAT-1", "limit": 3, "name": {"en_US": "Seats"}}],
        }
        notice = identify(services.ledger, parse_cloudblue(json.dumps(payload).encode()))
        accept(services.ledger, services.publisher, notice, services.settings.routes)
        record = services.ledger.get(notice.ref)
        assert record is not None
        orders.append(order_from_record(record))
    return orders


def test_every_order_the_worker_sends_matches_the_contract(
    spec: dict[str, Any], pax8: Pax8World, make_services: ServicesFactory
) -> None:
    schema = validator(spec, "/components/schemas/Order")
    orders = pax8_orders(pax8, make_services) + cloudblue_orders(make_services)
    seen: set[tuple[str, str, bool]] = set()
    for order in orders:
        body = json.loads(json.dumps(order.to_json()))  # as it goes on the wire
        errors = sorted(schema.iter_errors(body), key=str)
        assert not errors, f"{order.type.value} ({order.source}): {errors[0].message}"
        seen.add((body["type"], body["source"], body["isSimulation"]))
        # With a routes file: the route, and a ChangeProduct's previous route.
        previous = "backup" if order.type is RequestType.CHANGE_PRODUCT else ""
        routed = dataclasses.replace(order, route="archive", previous_route=previous)
        wire = json.loads(json.dumps(routed.to_json()))
        assert wire["route"] == "archive" and wire["previousRoute"] == (previous or None)
        assert not list(schema.iter_errors(wire)), order.type.value
        assert list(schema.iter_errors({**wire, "route": "Not A Route"})), "route has a pattern"
    assert {(kind.value, "pax8", sim) for kind in RequestType for sim in (False, True)} <= seen
    assert {kind for kind, source, _ in seen if source == "cloudblue"} == {
        "NetNew",
        "Update",
        "Renewal",
        "Deprovision",
    }


def test_the_schema_is_strict_where_the_contract_promises(
    spec: dict[str, Any], pax8: Pax8World, make_services: ServicesFactory
) -> None:
    """A body that breaks a promise fails validation: the check above can fail."""
    schema = validator(spec, "/components/schemas/Order")
    order = pax8_orders(pax8, make_services)[0].to_json()
    broken: list[dict[str, Any]] = [
        {**order, "type": "Teleport"},
        {**order, "type": "Update"},  # says Update, carries a NetNew request
        {k: v for k, v in order.items() if k != "idempotencyKey"},
        {**order, "idempotencyKey": "not-a-uuid"},
        {**order, "provisionRequest": {**order["provisionRequest"], "id": "../../etc"}},
        {**order, "isSimulation": "yes"},
    ]
    for body in broken:
        with pytest.raises(ValidationError):
            schema.validate(json.loads(json.dumps(body)))


def test_the_call_carries_the_documented_headers(spec: dict[str, Any]) -> None:
    sent: list[httpx.Request] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"subscriptionId": "sub-1"})

    adapter = HttpAdapter(
        url="https://vendor.test/pax8/orders",
        token="contract-token",
        transport=httpx.MockTransport(vendor),
    )
    try:
        adapter.handle(make_order())
    finally:
        adapter.close()
    (request,) = sent
    assert request.method == "POST" and request.headers["Authorization"] == "Bearer contract-token"
    assert request.headers["Content-Type"] == "application/json"
    documented = [ref["$ref"].removeprefix("#") for ref in operation(spec)["parameters"]]
    assert len(documented) == 2
    for pointer in documented:
        name = spec["components"]["parameters"][pointer.rsplit("/", 1)[1]]["name"]
        validator(spec, f"{pointer}/schema").validate(request.headers[name])
    assert request.headers["Idempotency-Key"] == json.loads(request.content)["idempotencyKey"]


def test_the_stubs_answers_are_the_documented_ones(spec: dict[str, Any]) -> None:
    """The test vendor answers in the documented shapes (so tests against it mean something)."""
    provisioned = validator(spec, "/components/schemas/Provisioned")
    refusal = validator(spec, "/components/schemas/Refusal")
    with VendorStub() as stub:
        client = httpx.Client(timeout=5)
        try:
            for kind in (RequestType.NET_NEW, RequestType.PARTNER_ENROLLMENT, RequestType.UPDATE):
                order = make_order(kind)
                answer = client.post(
                    stub.url,
                    json=order.to_json(),
                    headers={"Idempotency-Key": order.idempotency_key},
                )
                if answer.status_code < 300:
                    provisioned.validate(answer.json())
                else:
                    assert answer.status_code == 404  # an Update of an unknown subscription
                    refusal.validate(answer.json())
        finally:
            client.close()


def test_the_usage_source_call_and_answers_are_the_documented_ones(spec: dict[str, Any]) -> None:
    get = spec["paths"]["/pax8/usage"]["get"]
    documented = {p["name"]: p for p in get["parameters"] if "name" in p}
    sent: list[httpx.Request] = []
    answers = iter(
        [
            httpx.Response(
                200,
                json={
                    "lines": [
                        {
                            "summaryKey": "c-1",
                            "summaryDisplayName": "C",
                            "quantity": 4.5,
                            "productId": "p",
                            "unitOfMeasurement": "GB",
                        }
                    ]
                },
            ),  # fmt: skip
            httpx.Response(503, headers={"Retry-After": "7"}),
            httpx.Response(404, json={"message": "unknown subscription"}),
            httpx.Response(200, json={"lines": [{"summaryKey": "k" * 256}]}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return next(answers)

    adapter = HttpAdapter(
        url="http://vendor.test/pax8/orders",
        usage_url="http://vendor.test/pax8/usage",
        transport=httpx.MockTransport(handler),
    )
    query = UsageQuery(
        subscription_id=str(uuid.uuid4()),
        billing_period="2031-03",
        as_of=datetime(2031, 3, 5, 3, tzinfo=UTC),
        external_subscription_id="vendor-1",
    )
    (line,) = adapter.usage(query)
    assert line.quantity == 4.5 and line.summary_key == "c-1"
    params = dict(sent[0].url.params)
    assert set(params) <= set(documented)
    assert {n for n, p in documented.items() if p.get("required")} <= set(params)
    check = validator(spec, "/components/schemas/UsageLine")
    check.validate(line.model_dump(mode="json", by_alias=True))
    with pytest.raises(TransientVendorError) as transient:
        adapter.usage(query)
    assert transient.value.retry_after == 7
    with pytest.raises(PermanentVendorError, match="unknown subscription"):
        adapter.usage(query)
    with pytest.raises(PermanentVendorError, match="Pax8 would refuse"):
        adapter.usage(query)
    assert set(get["responses"]) == {"200", "429", "4XX", "5XX"}
