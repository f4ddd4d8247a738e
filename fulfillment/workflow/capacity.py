"""The per-backend cap on vendor calls in flight (``VENDOR_MAX_IN_FLIGHT``, or a route's
``max_in_flight``) as a provisioning task meets it: take a slot before the claim, give it
back as soon as the call has ended.

The slot is taken before the order is claimed, so an order that finds its backend full has
changed nothing in the ledger: the task hands its message back with the countdown the slot
script gave (:class:`~fulfillment.ledger.slots.VendorSlots`), which spends none of the
order's retries nor its deliveries, and the worker slot is free at once for an order of
another backend. Its holder is the claim's token and its lease the call's deadline, so a
slot never outlives the call it was taken for. With no cap (0) nothing here touches Redis.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from fulfillment.intake.routing import UNROUTED
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.slots import backend_name
from fulfillment.runtime import metrics

if TYPE_CHECKING:
    from config.settings import Settings
    from fulfillment.services import Services


def cap_of(settings: Settings, route: str, simulation: bool) -> int:
    """The cap of a route's backend: its ``max_in_flight`` in the routes file, else
    ``VENDOR_MAX_IN_FLIGHT`` (0: none)."""
    known = settings.routes.get(route)
    own = known.backend(simulation).max_in_flight if known is not None else None
    return settings.vendor_max_in_flight if own is None else own


log = logging.getLogger(__name__)


class Slot:
    """One provisioning run's place under its backend's cap (a no-op without a cap)."""

    def __init__(self, services: Services, ref: Ref, holder: str) -> None:
        self.services = services
        self.ref = ref
        self.holder = holder
        self.backend = ""
        self.lease = 0.0

    def take(self, route: str, lease_seconds: float) -> float:
        """Take a slot of ``route``'s backend for at most ``lease_seconds``: 0.0 when taken
        (or there is no cap), else the seconds to wait before asking again."""
        if not route or route == UNROUTED:
            return 0.0
        services = self.services
        cap = cap_of(services.settings, route, self.ref.simulation)
        if not cap:
            return 0.0
        backend = backend_name(route, self.ref.simulation)
        wait = services.slots.acquire(
            backend,
            self.holder,
            self.ref.member,
            cap,
            lease_seconds,
            longest_wait=min(30.0, services.settings.max_countdown_seconds),
        )
        if wait > 0:
            metrics.VENDOR_SLOT_WAITS.labels(metrics.backend(route)).inc()
            return wait
        self.backend, self.lease = backend, lease_seconds
        return 0.0

    def release(self) -> None:
        """Give the slot back, if one is held (once; later calls do nothing). Never raises:
        a slot Redis could not be told about frees itself when its lease ends, and the
        order's outcome must not depend on it."""
        if not self.backend:
            return
        backend, self.backend = self.backend, ""
        try:
            self.services.slots.release(backend, self.holder, self.lease)
        except redis.RedisError as exc:
            log.warning(
                "request_id=%s: the vendor-call slot of %s was not given back (%s); it frees "
                "itself in at most %.0fs",
                self.ref,
                backend,
                exc,
                self.lease,
            )
