"""The orders ``fulfill dev`` fires at a fresh stack, and the results the example vendor owes.

Each order is a simulated order event with fresh ids; some act on what an earlier one made
(an Update of the subscription a NetNew created), so they are fired only after their
predecessors were reported. The list is ordered so that the default eight cover seven
request types and both kinds of honest refusal; more orders add the rest, then NetNews.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from cli.follow import Followed, Follower
from cli.output import clip
from config.routes import Routes
from fulfillment.intake.routing import UNROUTED
from pax8.client import Pax8Client


@dataclass(frozen=True)
class DemoOrder:
    """One order of the demo and the result it must get."""

    title: str
    request: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    expect: str = "Success"
    expect_text: str = ""
    after: tuple[int, ...] = ()
    route: str = ""
    """The route (backend) the order must be recorded with, with a routes file."""

    @property
    def type(self) -> str:
        """The request type."""
        return str(self.request["type"])

    def body(self) -> dict[str, Any]:
        """The partial order event to post."""
        return {"provisionRequest": self.request, "provisionDetail": {"details": self.details}}

    def met_by(self, order: Followed) -> bool:
        """Whether ``order`` got the expected result (at the expected backend)."""
        if self.route and (order.record is None or order.record.route != self.route):
            return False
        return order.outcome == self.expect and self.expect_text in order.message


def _id() -> str:
    return str(uuid.uuid4())


def demo_orders(count: int) -> list[DemoOrder]:
    """The first ``count`` demo orders, with fresh ids and domains."""
    tag = uuid.uuid4().hex[:6]
    domain, trial_domain = f"acme-{tag}.example.com", f"globex-{tag}.example.com"
    acme = {"companyId": _id(), "companyName": f"Acme {tag}", "companyDomain": domain}
    sub, trial_sub = _id(), _id()
    orders = [
        DemoOrder(
            f"NetNew: Acme buys 3 seats ({domain})",
            {**acme, "type": "NetNew", "subscriptionId": sub, "quantity": 3},
            {"adminEmail": f"it@{domain}"},
        ),
        DemoOrder(
            f"NetNew: another company claims {domain}",
            {
                "type": "NetNew",
                "companyId": _id(),
                "companyName": f"Initech {tag}",
                "companyDomain": domain,
                "subscriptionId": _id(),
            },
            expect="Fail",
            expect_text=f"domain {domain} is already in use",
            after=(0,),
        ),
        DemoOrder(
            "Update: Acme goes to 5 seats",
            {**acme, "type": "Update", "subscriptionId": sub, "quantity": 5},
            after=(0,),
        ),
        DemoOrder(
            f"TrialCreate: Globex tries the product ({trial_domain})",
            {
                "type": "TrialCreate",
                "companyId": _id(),
                "companyName": f"Globex {tag}",
                "companyDomain": trial_domain,
                "subscriptionId": trial_sub,
            },
        ),
        DemoOrder(
            "TrialConvert: Globex buys after the trial",
            {"type": "TrialConvert", "subscriptionId": trial_sub},
            after=(3,),
        ),
        DemoOrder("PartnerEnrollment: a new partner", {"type": "PartnerEnrollment"}),
        DemoOrder(
            "Deprovision: a subscription the vendor never saw",
            {"type": "Deprovision", "subscriptionId": _id()},
            expect="Fail",
            expect_text="unknown to the vendor",
        ),
        DemoOrder(
            "Renewal: Acme renews its term",
            {**acme, "type": "Renewal", "subscriptionId": sub},
            after=(2,),
        ),
        DemoOrder(
            "ChangeProduct: Acme moves to another product",
            {**acme, "type": "ChangeProduct", "subscriptionId": sub, "productId": _id()},
            after=(7,),
        ),
        DemoOrder(
            "Deprovision: Acme cancels",
            {**acme, "type": "Deprovision", "subscriptionId": sub},
            after=(8,),
        ),
    ]
    while len(orders) < count:
        extra = f"{uuid.uuid4().hex[:6]}.example.com"
        orders.append(
            DemoOrder(
                f"NetNew: one more company ({extra})",
                {
                    "type": "NetNew",
                    "companyId": _id(),
                    "companyDomain": extra,
                    "subscriptionId": _id(),
                    "quantity": 1,
                },
            )
        )
    return orders[:count]


def routed_demo_orders(routes: Routes) -> list[DemoOrder]:
    """The demo of a routes file: a NetNew at each route (its first product), the first
    route's subscription moved to the second route's product (a ChangeProduct across
    backends) and changed there, an order of a product no route lists and a partner
    enrollment (the default route's, or one Fail each). Products must be UUIDs (Pax8's, and
    the sandbox's, are)."""
    tag = uuid.uuid4().hex[:6]
    candidates = [(route.name, _uuid_products(route.products)) for route in routes]
    listed = [(name, products[0]) for name, products in candidates if products]
    if not listed:
        raise ValueError("no route lists a UUID productId: the demo orders by product")
    orders: list[DemoOrder] = []
    subscriptions: list[str] = []
    for name, product in listed:
        domain = f"{name}-{tag}.example.com"
        subscriptions.append(_id())
        orders.append(
            DemoOrder(
                f"NetNew at {name}: {domain} buys product {product[:8]}",
                {
                    "type": "NetNew",
                    "companyId": _id(),
                    "companyDomain": domain,
                    "subscriptionId": subscriptions[-1],
                    "productId": product,
                    "quantity": 3,
                },
                route=name,
            )
        )
    if len(listed) > 1:
        (old_route, old), (new_route, new) = listed[0], listed[1]
        moved = subscriptions[0]
        orders.append(
            DemoOrder(
                f"ChangeProduct: {old_route}'s subscription moves to {new_route}'s product",
                {
                    "type": "ChangeProduct",
                    "subscriptionId": moved,
                    "oldProductId": old,
                    "productId": new,
                },  # fmt: skip
                after=(0,),
                route=new_route,
            )
        )
        orders.append(
            DemoOrder(
                f"Update at {new_route}: the moved subscription goes to 7 seats",
                {"type": "Update", "subscriptionId": moved, "productId": new, "quantity": 7},
                after=(len(orders) - 1,),
                route=new_route,
            )
        )
    unlisted = _id()
    default = routes.default
    orders.append(
        DemoOrder(
            f"NetNew of product {unlisted[:8]}, which no route lists",
            {
                "type": "NetNew",
                "companyDomain": f"other-{tag}.example.com",
                "productId": unlisted,
                "subscriptionId": _id(),
            },  # fmt: skip
            expect="Success" if default else "Fail",
            expect_text="" if default else "does not provision product",
            route=default or UNROUTED,
        )
    )
    orders.append(
        DemoOrder(
            "PartnerEnrollment: a new partner (no product)",
            {"type": "PartnerEnrollment"},
            expect="Success" if default else "Fail",
            expect_text="" if default else "no partner enrollments",
            route=default or UNROUTED,
        )
    )
    return orders


def _uuid_products(products: frozenset[str]) -> list[str]:
    good = []
    for product in sorted(products):
        try:
            uuid.UUID(product)
        except ValueError:
            continue
        good.append(product)
    return good


@dataclass
class DemoRun:
    """The demo's orders, what became of each, and whether all met expectations."""

    orders: list[DemoOrder]
    followed: dict[int, Followed] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)

    def finished(self, index: int) -> bool:
        """Whether order ``index`` has its final result (or will never get one)."""
        return index in self.refused or (index in self.followed and self.followed[index].done)

    def ok(self, index: int) -> bool:
        """Whether order ``index`` got its expected result."""
        order = self.followed.get(index)
        return order is not None and self.orders[index].met_by(order)

    @property
    def all_ok(self) -> bool:
        """Every order got its expected result."""
        return all(self.ok(i) for i in range(len(self.orders)))


def run_demo(
    pax8: Pax8Client,
    follower: Follower,
    echo: Callable[[str], None],
    orders: list[DemoOrder],
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> DemoRun:
    """Fire ``orders`` (each once its predecessors are done) and follow them to results."""
    run = DemoRun(orders)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        for index, order in enumerate(orders):
            if index in run.followed or index in run.refused:
                continue
            if not all(run.finished(before) for before in order.after):
                continue
            label = f"#{index + 1} {order.type}"
            echo(f"  {label.ljust(follower.width)}  {order.title}")
            event = pax8.create_order_event(order.body())
            attempt = event.provision_attempt
            if event.provision_request is None or attempt is None:
                run.refused[index] = "Pax8 answered without a request or attempt"
                continue
            if attempt.status != "Acknowledged":
                run.refused[index] = f"webhook {attempt.status}: {attempt.error_detail or ''}"
                echo(f"  {label}  the receiver did not accept the webhook: {run.refused[index]}")
                continue
            run.followed[index] = follower.add(event.provision_request.id, label)
        follower.poll()
        if all(run.finished(i) for i in range(len(orders))):
            break
        time.sleep(follower.interval)
    return run


def summary_lines(run: DemoRun) -> list[str]:
    """One line per order: expected and actual result."""
    lines = []
    width = len(f"#{len(run.orders)} ") + max((len(o.type) for o in run.orders), default=0)
    for index, order in enumerate(run.orders):
        followed = run.followed.get(index)
        got = followed.outcome if followed and followed.outcome else "no result"
        if index in run.refused:
            got = "webhook refused"
        mark = (
            click.style("as expected", fg="green")
            if run.ok(index)
            else click.style("UNEXPECTED", fg="red", bold=True)
        )
        expected = order.expect + (f' ("{order.expect_text}")' if order.expect_text else "")
        label = f"#{index + 1} {order.type}".ljust(width)
        lines.append(f"  {label}  expected {expected}; got {got}  {mark}")
    return lines


def missed_lines(run: DemoRun) -> list[str]:
    """One line per order that did not get its expected result, saying what it got instead."""
    lines = []
    for index, order in enumerate(run.orders):
        if run.ok(index):
            continue
        followed = run.followed.get(index)
        if index in run.refused:
            got = f"its webhook was refused ({run.refused[index]})"
        elif followed is None:
            got = "it was never sent (an order it depends on did not finish)"
        elif not followed.done:
            state = followed.record.state if followed.record else "not in the ledger"
            got = f"no result yet (request {followed.request_id}, state {state})"
        else:
            got = f"{followed.outcome} ({clip(followed.message, 120) or 'no message'})"
        lines.append(f"  #{index + 1} {order.type}: expected {order.expect}; {got}")
    return lines
