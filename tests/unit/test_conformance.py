"""``vendors.conformance``: how the checker judges a refusal's message, and the orders it makes."""

from __future__ import annotations

import pytest

from pax8.models import RequestType
from vendors.conformance import OrderMaker, unactionable


@pytest.mark.parametrize(
    ("message", "status", "why"),
    [
        ("Subscription 42 is unknown to the vendor; create it first.", 404, None),
        ("The domain acme.com is already a customer: use another domain.", 400, None),
        ("", 400, "no message"),
        ("Bad Request", 400, "a status phrase, not a reason"),
        ("Not Found.", 404, "a status phrase, not a reason"),
        ("validation failed", 422, "a status phrase, not a reason"),
        ("E1234: seats", 400, "too short to act on"),
        ('{"code": 17, "field": "seats"}', 400, "JSON, not a sentence"),
        ("<html><body>Oops</body></html>", 400, "an HTML page"),
        ("Traceback (most recent call last): File x.py, in y", 400, "a stack trace"),
        (
            "java.lang.NullPointerException: at com.vendor.Api.call(Api.java:12)",
            400,
            "a stack trace",
        ),
        ("A" * 300 + " and " + "B" * 300, 400, "605 characters (Pax8 keeps 500)"),
    ],
)
def test_a_refusal_message_must_be_something_a_partner_can_act_on(
    message: str, status: int, why: str | None
) -> None:
    assert unactionable(message, status) == why


def test_orders_are_simulations_with_fresh_ids_and_one_subscription_per_lifecycle() -> None:
    maker = OrderMaker()
    net_new = maker.make(RequestType.NET_NEW)
    update = maker.make(
        RequestType.UPDATE, maker.subscription, {"externalProvisionerSubscriptionId": "s-1"}
    )
    bodies = [order.to_json() for order in (net_new, update)]
    assert all(body["isSimulation"] is True for body in bodies)
    assert bodies[0]["provisionRequest"]["id"] != bodies[1]["provisionRequest"]["id"]
    assert bodies[0]["idempotencyKey"] != bodies[1]["idempotencyKey"]
    assert (
        bodies[0]["provisionRequest"]["subscriptionId"]
        == bodies[1]["provisionRequest"]["subscriptionId"]
    )
    assert bodies[1]["provisionDetail"]["details"] == {"externalProvisionerSubscriptionId": "s-1"}
    assert bodies[1]["provisionRequest"]["quantity"] == 2
