"""What is owed to Pax8, and the alert when a period's closing totals are late.

A subscription **owes** a period's closing totals when it was active in the period and
Pax8 has not yet taken a post of its lines made after the period ended (or the source said
it has none). The daily run posts them on the 1st and again on the 2nd; from
``USAGE_OVERDUE_AFTER_HOURS`` into the 1st (noon UTC) until Pax8's cutoff (00:00 UTC on
the 3rd), every subscription still owing them is **overdue**: the check (each beat tick)
keeps the count per environment for the ``fulfillment_usage_overdue_subscriptions`` gauge
(alert ``FulfillmentUsageOverdue``) and sends one Sentry event per period and environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fulfillment.ledger.refs import Scope
from fulfillment.usage import periods
from fulfillment.usage.context import UsageContext
from fulfillment.usage.models import Subscription


@dataclass(frozen=True)
class Owed:
    """One subscription's period that Pax8 does not have yet."""

    subscription: Subscription
    period: str
    closing: bool
    """The closing totals of a period that has ended (else: today's post of the current one)."""
    last_outcome: str
    last_message: str

    def summary(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "scope": str(self.subscription.scope),
            "subscriptionId": self.subscription.id,
            "period": self.period,
            "closing": self.closing,
            "cutoff": periods.cutoff(self.period).isoformat(),
            "lastOutcome": self.last_outcome or None,
            "lastMessage": self.last_message or None,
        }


def scopes(context: UsageContext) -> list[Scope]:
    """The environments usage is posted in: those with credentials."""
    settings = context.settings
    return [
        scope
        for scope, simulation in ((Scope.PAX8, False), (Scope.PAX8_SIMULATION, True))
        if settings.has_credentials(simulation)
    ]


def owed(context: UsageContext, now: datetime) -> list[Owed]:
    """Everything Pax8 does not have yet at ``now``: the previous period's closing totals
    (until its cutoff), and the current period's post of today (once today's run is due)."""
    store, wanted = context.store, set(scopes(context))
    current = periods.period_of(now)
    earlier = periods.previous(current)
    out: list[Owed] = []
    subscriptions = [
        s for s in store.subscriptions(started_before=now.timestamp()) if s.scope in wanted
    ]
    if now < periods.cutoff(earlier):
        closed = store.closed(earlier)
        for sub in subscriptions:
            if sub.active_in(earlier) and sub.member not in closed:
                out.append(_owed(context, sub, earlier, closing=True))
    if context.policy.due(now):
        today = now.date().isoformat()
        for sub in subscriptions:
            if not sub.active_in(current):
                continue
            state = store.period_state(sub.scope, sub.id, current)
            if state.get("last_success_day") != today:
                out.append(_owed(context, sub, current, closing=False, state=state))
    return out


def _owed(
    context: UsageContext,
    sub: Subscription,
    period: str,
    *,
    closing: bool,
    state: dict[str, str] | None = None,
) -> Owed:
    if state is None:
        state = context.store.period_state(sub.scope, sub.id, period)
    return Owed(sub, period, closing, state.get("last_outcome", ""), state.get("last_message", ""))


@dataclass(frozen=True)
class Check:
    """What one overdue check found."""

    period: str
    overdue: list[Owed]
    alert: dict[Scope, list[Owed]]
    """Per environment, the overdue subscriptions to send to Sentry (first time this period)."""


def check(context: UsageContext, now: datetime) -> Check:
    """Count the overdue subscriptions (kept for the metric), and say which environments'
    alerts are new."""
    earlier = periods.previous(periods.period_of(now))
    due = periods.deadline(earlier, context.policy.overdue_after_hours)
    late: list[Owed] = []
    if due <= now < periods.cutoff(earlier):
        late = [o for o in owed(context, now) if o.closing]
    counts = {scope: 0 for scope in scopes(context)}
    for item in late:
        counts[item.subscription.scope] = counts.get(item.subscription.scope, 0) + 1
    context.store.set_overdue(earlier, counts)
    alert = {
        scope: [o for o in late if o.subscription.scope is scope]
        for scope, count in counts.items()
        if count and context.store.mark_alerted(earlier, scope)
    }
    return Check(earlier, late, alert)
