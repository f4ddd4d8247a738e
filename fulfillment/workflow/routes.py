"""The route of an order as the worker meets it: which one a claim expects, whose adapter
calls, and what a worker does with an order of a route it does not serve.

Intake decides the route once and the ledger keeps it (``fulfillment/intake/routing.py``);
the task's message carries it, so a claim names the route it took the call's deadline from
and the ledger refuses (``reroute``) a claim that expected another. A message queued before
routes carries none: the record is read first, and a record written before routes (it has
no route) gets the route intake would decide now, kept with it by the claim.

A route that has a queue of its own runs on the workers that serve it (``WORKER_ROUTES``);
an old message for it that reaches another worker is handed to that queue rather than
called here, so a worker never takes on a backend it was walled off from.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fulfillment.cloudblue.calls import mpns_of
from fulfillment.intake.notifications import products_of
from fulfillment.intake.routing import UNROUTED, Decision, decide
from fulfillment.ledger import Record
from fulfillment.ledger.refs import Ref
from fulfillment.names import route_queue
from fulfillment.workflow.orders import order_from_record
from fulfillment.workflow.outcomes import Outcome
from vendors.base import Order, VendorAdapter
from vendors.errors import VendorMisconfigured

if TYPE_CHECKING:
    from fulfillment.services import Services

log = logging.getLogger(__name__)

ROUTE_PROBLEM = "route"
"""The problem label (``fulfillment_vendor_misconfigured_total``) of an order whose route the
routes file no longer has."""


@dataclass(frozen=True)
class Expected:
    """The route a claim expects the record to have, and what to keep with one that has
    none yet."""

    recorded: str
    """The record's route as the claimer believes it (``""``: none yet)."""
    decided: tuple[str, str, str] = ("", "", "")
    """(route, previous route, refusal) for a record written before routes."""
    record: Record | None = None
    """The record, when it was read to find out."""

    @property
    def target(self) -> str:
        """The route whose adapter the claim is for."""
        return self.recorded or self.decided[0]


def claim_route(services: Services, ref: Ref, known: str | None) -> Expected:
    """What a claim of ``ref`` expects: the message's route (``known``), else the record's,
    else (a record written before routes) the route decided for it now."""
    if known:
        return Expected(known)
    record = services.ledger.get(ref)
    if record is None or record.route:
        return Expected(record.route if record else "", record=record)
    decision = legacy_decision(services, record)
    return Expected("", (decision.route, decision.previous, decision.refusal), record)


def legacy_decision(services: Services, record: Record) -> Decision:
    """The route of a record written before routes: what intake would decide for it now
    (the default route for a product no route lists)."""
    routes = services.settings.routes
    try:
        order = order_from_record(record)
    except Exception:  # noqa: BLE001 - a payload that cannot be read: the default route,
        return decide(routes, record.source, record.type, ())  # where it fails as before
    if order.cloudblue is not None:
        return decide(routes, record.source, record.type, mpns_of(order.cloudblue))
    old = order.request.old_product_id
    return decide(
        routes, record.source, record.type, products_of(order.request), (old,) if old else ()
    )


def hand_off(
    services: Services, ref: Ref, expected: Expected, detail_id: str, route: str | None
) -> Outcome | None:
    """An old message (it carries no route) for a route this worker does not serve: sent to
    that route's queue instead (an Outcome saying so); None to go on here."""
    record = expected.record
    target = expected.target
    known = services.settings.routes.get(target)
    if route or record is None or known is None or not known.own_queue:
        return None
    if services.settings.serves(target):
        return None
    services.publisher.provision(ref, record.type, detail_id, target)
    log.info("request_id=%s: route %s is served by other workers; handed to its queue", ref, target)
    return Outcome.done(f"handed to {route_queue(target)}")


def adapter_of(services: Services, record: Record) -> VendorAdapter:
    """The adapter of the record's route; :class:`VendorMisconfigured` (held, with an alert)
    when the routes file no longer has that route: the order never goes to another."""
    routes = services.settings.routes
    if routes.get(record.route) is None:
        where = routes.source or "the routes"
        raise VendorMisconfigured(
            f"this order was recorded for route {record.route}, which {where} no longer "
            "has: put the route back (the order is held, and never sent to another backend)",
            ROUTE_PROBLEM,
        )
    return services.adapters.for_route(record.route, record.simulation)


def routed_order(services: Services, record: Record) -> Order:
    """The order the adapter receives, with its route and previous route when a routes file
    decided them."""
    order = order_from_record(record)
    if not services.settings.routes.from_file or record.route == UNROUTED:
        return order
    return dataclasses.replace(order, route=record.route, previous_route=record.previous_route)


def named(services: Services, route: str, message: str) -> str:
    """``message`` naming the backend it is about (with a routes file: several backends)."""
    if services.settings.routes.from_file and route:
        return f"backend {route}: {message}"
    return message
