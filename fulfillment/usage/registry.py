"""Which subscriptions usage is posted for: noted from the provisioning outcomes.

Why here and not derived from the ledger's records: the ledger purges reported orders after
``LEDGER_RETENTION_DAYS`` (30 by default) while a subscription is billed for years, and a
daily scan of every record would cost a read per order ever received. So the provisioning
step makes one call, :func:`note_provisioned`, when the vendor answered Success, before the
outcome is stored (a crash between the two repeats the call on redelivery; noting twice
changes nothing).

What Pax8 expects, and how it is followed (Pax8's pages cited in ``docs/usage.md``):

* usage is posted "to the subscription Pax8 provides upon the provisioning request"
  (``usage-lines``): a Success of NetNew, TrialCreate, TrialConvert, Update, ChangeProduct
  or Renewal notes its ``subscriptionId`` active, with its product, company and partner;
* ``PartnerEnrollment`` is "the creation of a partner-level account" (``provision-request-
  types``), not a subscription of a product: nothing is noted, so a partner that only
  enrolled has nothing posted;
* Pax8 bills "the latest totals posted" for a period and bills subscriptions "based on
  their start and end dates" whatever their status (``billing-usage-examples``,
  ``subscription-management``): a Deprovision's Success notes the subscription ended at
  that moment; its usage up to then is still posted (its period's totals daily, and the
  closing totals on the 1st and 2nd), and nothing for the periods after.

CloudBlue orders are not Pax8's to bill: nothing is noted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulfillment.ledger.refs import Scope, is_id
from fulfillment.usage.context import usage_context
from pax8.models import RequestType
from vendors.base import Order, Provisioned

if TYPE_CHECKING:
    from fulfillment.services import Services

ACTIVATES = frozenset(
    {
        RequestType.NET_NEW,
        RequestType.TRIAL_CREATE,
        RequestType.TRIAL_CONVERT,
        RequestType.UPDATE,
        RequestType.CHANGE_PRODUCT,
        RequestType.RENEWAL,
    }
)
"""The types whose Success means the subscription is (still) active."""


def note_provisioned(services: Services, order: Order, result: Provisioned) -> bool:
    """Note what a successful order means for usage; whether it noted anything."""
    if order.source != "pax8" or order.cloudblue is not None:
        return False
    if order.type is RequestType.DEPROVISION:
        event = "ended"
    elif order.type in ACTIVATES:
        event = "active"
    else:
        return False  # PartnerEnrollment: a partner-level account, no subscription
    request = order.request
    subscription_id = request.subscription_id
    if not is_id(subscription_id):
        return False  # no subscription (or an id that cannot be a key): nothing to post to
    assert subscription_id is not None
    external = result.subscription_id or order.details.get("externalProvisionerSubscriptionId")
    values = {
        "product_id": request.product_id,
        "company_id": request.company_id,
        "company_name": request.company_name,
        "partner_id": request.partner_id,
        "quantity": str(request.quantity) if request.quantity is not None else None,
        "external_id": str(external) if external else None,
        "type": order.type.value,
        # Its usage source: the backend that provisioned it (a ChangeProduct to another
        # backend's product moves it there).
        "route": order.route,
    }
    fields = {name: str(value) for name, value in values.items() if value}
    context = usage_context(services)
    scope = Scope.PAX8_SIMULATION if order.is_simulation else Scope.PAX8
    context.store.register(scope, subscription_id, event, context.clock.now().timestamp(), fields)
    return True
