"""The collaborators of usage reporting, taken from a process's :class:`Services`.

One :class:`UsageContext` per call site (the tasks, the provisioning hook, the CLI, beat's
exporter): the store on the process's Redis, the clock and the policy from its settings,
the Usage API client and the vendor adapters from its services (built on first use).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import TYPE_CHECKING

from config.settings import Settings
from fulfillment.usage.clock import Clock, clock_for
from fulfillment.usage.models import Subscription
from fulfillment.usage.store import UsageStore
from fulfillment.workflow.policies import RetryPolicy

if TYPE_CHECKING:
    from fulfillment.services import Services
    from pax8.usage import UsageClient
    from vendors.base import VendorAdapter


@dataclass(frozen=True)
class UsagePolicy:
    """The numbers of usage reporting, from the settings."""

    run_at: time
    """From when in a (UTC) day its run starts."""
    overdue_after_hours: float
    posts_per_minute: int
    burst: int
    """Posts that may leave at once (a second's worth): short bursts, never the minute's."""
    retry: RetryPolicy
    lease_seconds: float
    """How long a job's claim outlives a holder that died (past the task's hard limit)."""
    chunk_size: int
    budget_seconds: float
    """How long one task may post before it hands the rest of its jobs to a new task."""

    @classmethod
    def from_settings(cls, settings: Settings) -> UsagePolicy:
        """The policy ``settings`` ask for."""
        hours, minutes = (int(part) for part in settings.usage_run_at.split(":"))
        return cls(
            run_at=time(hours, minutes),
            overdue_after_hours=settings.usage_overdue_after_hours,
            posts_per_minute=settings.usage_posts_per_minute,
            burst=max(1, settings.usage_posts_per_minute // 60),
            retry=RetryPolicy(
                max_retries=settings.usage_max_retries,
                base=settings.retry_backoff_seconds,
                cap=settings.retry_backoff_max_seconds,
                limit=settings.max_countdown_seconds,
            ),
            lease_seconds=settings.claim_lease_seconds,
            chunk_size=settings.usage_chunk_size,
            budget_seconds=0.8 * settings.task_soft_time_limit_seconds,
        )

    def due(self, now: datetime) -> bool:
        """Whether the day of ``now`` has reached its run time."""
        return now.timetz().replace(tzinfo=None) >= self.run_at


class UsageContext:
    """Store, clock, policy, Usage API client and adapters of one process."""

    def __init__(
        self,
        settings: Settings,
        store: UsageStore,
        clock: Clock,
        services: Services | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.policy = UsagePolicy.from_settings(settings)
        self._services = services

    @property
    def client(self) -> UsageClient:
        """The Usage API client."""
        assert self._services is not None, "a usage context without services posts nothing"
        return self._services.usage_pax8

    def adapter(self, simulation: bool, route: str) -> VendorAdapter:
        """The vendor adapter (its usage source) of ``route`` in one environment."""
        assert self._services is not None, "a usage context without services asks no source"
        return self._services.adapters.for_route(route, simulation)

    def route_of(self, sub: Subscription) -> str | None:
        """The route whose backend is ``sub``'s usage source: the one that provisioned it, or
        (noted before routes) the one its product has now; None when no route takes it."""
        routes = self.settings.routes
        if sub.route and routes.get(sub.route) is not None:
            return sub.route
        if not routes.from_file or not sub.product_id:
            return routes.default
        return routes.route_of_product(sub.product_id)


def usage_context(services: Services, clock: Clock | None = None) -> UsageContext:
    """The usage context of ``services`` (``clock``: another "now", e.g. a command's)."""
    settings = services.settings
    store = UsageStore(services.redis, keep_seconds=settings.usage_record_days * 86400)
    return UsageContext(settings, store, clock or clock_for(settings.usage_clock_file), services)
