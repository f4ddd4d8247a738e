"""The usage step of ``fulfill dev``'s demo: the NetNew's subscription, posted to the Usage API.

After the orders, the demo posts the usage of the first NetNew's subscription for the
current period, exactly as the daily run does (the example vendor's usage source, batches,
the shared limiter, a token of the audience ``api://usage``, the post recorded), then
reads back from Pax8 what it now holds for each summary.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from cli.output import safe
from config.settings import Settings
from fulfillment.ledger.refs import Scope
from fulfillment.runtime.clients import RedisUse
from fulfillment.usage import periods
from fulfillment.usage.context import usage_context
from fulfillment.usage.models import JobOutcome
from fulfillment.usage.posting import post_now
from pax8.usage import UsageTarget
from worker.services import build_services


def demo_usage(settings: Settings, subscription_id: str, echo: Callable[[str], None]) -> bool:
    """Post and read back the usage of ``subscription_id`` (simulated); whether Pax8 took it."""
    services = build_services(settings, RedisUse.CLI)
    try:
        context = usage_context(services)
        period = periods.period_of(context.clock.now())
        scope = Scope.PAX8_SIMULATION
        echo(
            f"\nUsage: the NetNew's subscription {subscription_id}, its {period} totals from the "
            "example vendor's usage source, posted to Pax8's Usage API (token audience "
            "api://usage) as the daily run posts them:"
        )
        result = post_now(context, scope, subscription_id, period, f"demo-{secrets.token_hex(4)}")
        posts = context.store.posts(scope, subscription_id, period)
        for post in posts:
            flag = "overwrite" if post.get("overwrite") else "append"
            echo(
                f"  POST /v2/usage/lines?subscriptionId=…&billingPeriod={period} "
                f"batch {post['batch']}/{post['batches']} ({flag}): {len(post['lines'])} lines "
                f"-> {post['status']}"
            )
        if result.outcome is not JobOutcome.POSTED:
            state = context.store.period_state(scope, subscription_id, period)
            said = safe(state.get("last_message", ""))
            echo(f"  not posted: {result.outcome or result.note}: {said}")
            return False
        keys = dict.fromkeys(line["summaryKey"] for post in posts for line in post["lines"])
        target = UsageTarget(subscription_id=subscription_id)
        for key in keys:
            held = list(context.client.get_lines(target, period, key, simulation=True))
            shown = ", ".join(f"{x.quantity:g} {x.unit_of_measurement}" for x in held)
            echo(f"  Pax8 holds for {safe(key)} ({held[0].summary_display_name}): {safe(shown)}")
        return True
    finally:
        services.close()
