"""Which route (backend) an order goes to: decided once, when it is recorded.

By its product (``docs/routes.md``): a Pax8 order by ``productId``, a ChangeProduct by its
**new** product (its old product's route is kept as the previous route, for a backend that
must take a subscription over from another), a PartnerEnrollment (which has no product) by the
default route, a CloudBlue call by the MPNs of its products (those without an MPN do not
count). An order no route takes is still recorded and queued, under the route ``-``
(:data:`UNROUTED`), with the reason: the worker answers it with one ``Fail`` a partner can act
on and an alert for the vendor, never a silent drop. A CloudBlue call whose products belong to
different backends is refused the same way (one call provisions at one backend; splitting it
could not be made exactly-once).

The ledger keeps the route with the record and never changes it (``lua/accept.lua``,
``lua/claim.lua``): a routes file edited while an order is in flight does not send it
elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from config.routes import Routes
from fulfillment.ledger import Notice
from fulfillment.ledger.refs import is_id
from pax8.models import RequestType

UNROUTED = "-"
"""The route of an order no route takes (never a route's name: those start with a letter)."""


@dataclass(frozen=True)
class Decision:
    """Where an order goes: a route's name, or :data:`UNROUTED` with the reason."""

    route: str
    previous: str = ""
    refusal: str = ""

    @property
    def routed(self) -> bool:
        """Whether a route takes the order."""
        return self.route != UNROUTED


def decide(
    routes: Routes,
    source: str,
    request_type: str,
    products: Iterable[str],
    old_products: Iterable[str] = (),
) -> Decision:
    """The route of an order of ``source`` and ``request_type`` whose products (Pax8
    ``productId``; CloudBlue MPNs) are ``products`` (see the module docstring)."""
    if not routes.from_file:
        assert routes.default is not None  # VENDOR_ADAPTER: the one route takes everything
        return Decision(routes.default)
    wanted = [product for product in products if product]
    if request_type == RequestType.PARTNER_ENROLLMENT.value or not wanted:
        if routes.default is not None:
            return Decision(routes.default)
        return Decision(UNROUTED, refusal=_no_product(request_type))
    route_of = routes.route_of_mpn if source == "cloudblue" else routes.route_of_product
    chosen = {product: route_of(product) for product in wanted}
    unknown = [product for product, route in chosen.items() if route is None]
    if unknown:
        return Decision(UNROUTED, refusal=_unknown(source, unknown))
    names = sorted({route for route in chosen.values() if route is not None})
    if len(names) > 1:
        return Decision(UNROUTED, refusal=_mixed(list(chosen)))
    previous = ""
    if request_type == RequestType.CHANGE_PRODUCT.value:
        old = [product for product in old_products if product]
        previous = (route_of(old[0]) or "") if old else ""
    return Decision(names[0], previous)


def routed(routes: Routes, notice: Notice) -> Notice:
    """``notice`` with its route decided (:func:`decide`)."""
    decision = decide(routes, notice.source, notice.type, notice.products, notice.old_products)
    return dataclasses.replace(
        notice,
        route=decision.route,
        previous_route=decision.previous,
        route_refusal=decision.refusal,
    )


def _shown(product: str) -> str:
    """An outside id fit for a partner's message (it was never checked on the way in)."""
    return product if is_id(product) else "(an id with unexpected characters)"


def _no_product(request_type: str) -> str:
    if request_type == RequestType.PARTNER_ENROLLMENT.value:
        return (
            "This vendor's integration takes no partner enrollments (no backend is set up "
            "for them); nothing was done. Contact the vendor's support."
        )
    return (
        "This order names no product, and this vendor's integration provisions orders by "
        "product; nothing was provisioned. Contact the vendor's support."
    )


def _unknown(source: str, unknown: list[str]) -> str:
    kind = "MPN" if source == "cloudblue" else "product"
    names = ", ".join(_shown(product) for product in unknown[:5])
    plural = "s" if len(unknown) > 1 else ""
    return (
        f"This vendor's integration does not provision {kind}{plural} {names} (no backend is "
        "set up for it); nothing was provisioned. Contact the vendor's support to have it "
        "set up, then order again."
    )


def _mixed(products: list[str]) -> str:
    names = ", ".join(_shown(product) for product in products[:10])
    return (
        f"The subscription's products ({names}) are provisioned by different systems of this "
        "vendor, and one request can go to only one of them; nothing was provisioned. Order "
        "them in separate subscriptions, or contact the vendor's support."
    )


class Unrouted(Exception):
    """An order no route takes (the alert the vendor gets; the partner gets the message as
    the order's Fail)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
