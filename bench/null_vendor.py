"""A vendor adapter that answers at once and does no I/O: ``bench.null_vendor:NullVendor``.

``bench.scaling`` measures the worker's own cost per order (ledger, broker, the result
POST to Pax8) and counts the Redis commands it makes; the ``example`` vendor keeps its
tenants in the same Redis and would count its own commands too.
"""

from __future__ import annotations

from vendors.base import Order, Provisioned, VendorAdapter


class NullVendor(VendorAdapter):
    """Every order succeeds at once with a subscription id derived from the request."""

    def handle(self, order: Order) -> Provisioned:
        """Provisioned, no call made."""
        return Provisioned(subscription_id=f"null-{order.request_id[:8]}")
