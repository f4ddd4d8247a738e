"""Sentry set-up (off when ``SENTRY_DSN`` is unset) and the events for an order that needs an
operator: a dead one, one that raised an alert (a vendor contract error, refused
credentials), and usage whose closing totals are late for Pax8's billing cutoff.

No event or breadcrumb leaves with a credential: local variables are off, request bodies
are not sent, and :class:`~config.scrub.Scrubber` removes every configured secret (by
value, in any case, under any key) plus anything under a sensitive key or after ``Bearer``.

Callers pass their integrations (Flask for the receiver, Celery for the worker and
beat), so this module never imports a web or task framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sentry_sdk
from sentry_sdk.integrations import Integration

from config.scrub import Scrubber
from config.settings import Settings


def init_sentry(
    settings: Settings, component: str, integrations: Sequence[Integration] = ()
) -> bool:
    """Initialise Sentry for ``component``; False when no DSN is configured."""
    if settings.sentry_dsn is None:
        return False
    scrubber = Scrubber.from_settings(settings)
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        integrations=list(integrations),
        send_default_pii=False,
        # Local variables carry clients, tokens and settings; the traceback is enough.
        include_local_variables=False,
        # Request bodies are webhooks: partners' personal data, no help with a stack trace.
        max_request_body_size="never",
        before_send=scrubber.before_send,  # type: ignore[arg-type]
        before_breadcrumb=scrubber.before_breadcrumb,
        traces_sample_rate=0.0,
        server_name=component,
    )
    # The global scope: a tag on the current scope would miss the requests that gevent runs
    # in greenlets of their own (each with its own context).
    sentry_sdk.get_global_scope().set_tag("component", component)
    return True


def capture_dead_order(
    request_id: str, reason: str, error: BaseException | None = None, **tags: Any
) -> None:
    """Report an order that was given up on, tagged with its request id."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("provision_request_id", request_id)
        for key, value in tags.items():
            scope.set_tag(key, str(value))
        scope.set_context("order", {"request_id": request_id, "reason": reason, **tags})
        scope.fingerprint = ["dead-order", request_id]
        if error is not None:
            scope.set_extra("dead_reason", reason)
            sentry_sdk.capture_exception(error)
        else:
            sentry_sdk.capture_message(f"Order {request_id} is dead: {reason}", level="error")
    sentry_sdk.flush(timeout=2.0)


def capture_order_alert(request_id: str, error: BaseException, **tags: Any) -> None:
    """Report ``error`` for an order that needs an operator although it is not dead."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("provision_request_id", request_id)
        for key, value in tags.items():
            scope.set_tag(key, str(value))
        scope.set_context("order", {"request_id": request_id, **tags})
        sentry_sdk.capture_exception(error)
    sentry_sdk.flush(timeout=2.0)


def capture_usage_overdue(period: str, scope: str, subscriptions: list[str], cutoff: str) -> None:
    """Report the subscriptions whose closing usage totals of ``period`` Pax8 still lacks
    (one event per period and environment; docs/usage.md says what to do)."""
    with sentry_sdk.new_scope() as scope_:
        scope_.set_tag("usage_period", period)
        scope_.set_tag("scope", scope)
        scope_.set_context(
            "usage",
            {"period": period, "scope": scope, "cutoff": cutoff, "overdue": subscriptions[:100]},
        )
        scope_.fingerprint = ["usage-overdue", period, scope]
        sentry_sdk.capture_message(
            f"Usage of {period} ({scope}) not posted for {len(subscriptions)} subscription(s); "
            f"Pax8 takes it until {cutoff}",
            level="error",
        )
    sentry_sdk.flush(timeout=2.0)
