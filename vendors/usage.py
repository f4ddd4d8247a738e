"""The usage source a vendor writes beside its adapter: one subscription's period, its lines.

:meth:`vendors.base.VendorAdapter.usage` receives a :class:`UsageQuery` and returns the
**current totals for the whole billing period** as a list of
:class:`~pax8.usage.UsageLine` (one per product and summary; Pax8 bills the latest totals
it was sent, never a sum of posts). An empty list means "no usage in this period": nothing
is posted and nothing is owed. The worker calls it once a day for every active subscription
(and, on the 1st and 2nd, for the previous period's closing totals); ``docs/usage.md`` has
an example.

Errors: raise :class:`~vendors.errors.TransientVendorError` when your system cannot answer
now (the worker tries again with backoff), :class:`~vendors.errors.PermanentVendorError`
when it never will for this subscription (recorded; the operator sees it in
``fulfill usage status``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vendors.errors import PermanentVendorError


@dataclass(frozen=True)
class UsageQuery:
    """Which subscription and period the worker asks usage for, and what it knows of it."""

    subscription_id: str
    """Pax8's subscription id (the one usage is posted to)."""
    billing_period: str
    """``yyyy-MM``."""
    as_of: datetime
    """Now, as the worker's usage clock says: the totals up to this moment (a closed
    period's closing totals once it is past the period's end)."""
    is_simulation: bool = False
    product_id: str | None = None
    company_id: str | None = None
    partner_id: str | None = None
    external_subscription_id: str | None = None
    """Your own id of the subscription, as your provisioning result gave it."""
    quantity: int | None = None
    """The quantity of the last order that changed it."""
    ended_at: datetime | None = None
    """When its Deprovision succeeded (None while active): usage up to then is still owed."""

    def to_json(self) -> dict[str, Any]:
        """The query as the ``http`` adapter sends it (query parameters)."""
        out: dict[str, Any] = {
            "subscriptionId": self.subscription_id,
            "billingPeriod": self.billing_period,
            "asOf": _iso(self.as_of),
            "isSimulation": "true" if self.is_simulation else "false",
            "productId": self.product_id,
            "companyId": self.company_id,
            "partnerId": self.partner_id,
            "externalSubscriptionId": self.external_subscription_id,
            "quantity": self.quantity,
            "endedAt": _iso(self.ended_at) if self.ended_at else None,
        }
        return {key: value for key, value in out.items() if value is not None}


class UsageNotReported(PermanentVendorError):
    """The adapter has no usage source (its class does not implement ``usage``)."""


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
