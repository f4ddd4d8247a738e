"""Retry budgets, leases and reconciliation timing: every number the domain needs, from one
:class:`~config.settings.Settings`, in one place.

One budget per kind of work, each counted in the ledger (so it survives a crash and a
redelivery): vendor calls count the record's ``retries``, result posts its
``report_retries``. Celery's own retry counter is not used for budgets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from config.settings import Settings
from fulfillment.workflow.backoff import backoff_delay


@dataclass(frozen=True)
class RetryPolicy:
    """How often one kind of work is retried, and how long each wait is."""

    max_retries: int
    base: float
    cap: float
    limit: float | None = None
    """The longest countdown a server's Retry-After may ask for (below the visibility
    timeout: a longer one would be redelivered early)."""

    def exhausted(self, retries: int) -> bool:
        """Whether ``retries`` retries already spent the budget."""
        return retries >= self.max_retries

    def delay(
        self,
        retries: int,
        retry_after: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """Seconds before retry ``retries + 1`` (jittered backoff, Retry-After a floor)."""
        return backoff_delay(retries, self.base, self.cap, retry_after, rng, self.limit)


@dataclass(frozen=True)
class ReconcilePolicy:
    """Timing of a reconciliation run."""

    interval: float
    lock_seconds: float
    stuck_after: float
    received_grace: float = 30.0
    page_size: int = 100
    budget: float | None = None
    retention: float | None = None

    @property
    def report_grace(self) -> float:
        """A finished record unreported for this long is reported again."""
        return self.interval


@dataclass(frozen=True)
class Policies:
    """Everything the tasks and the domain functions need to know about time and budgets."""

    provision: RetryPolicy
    report: RetryPolicy
    reconcile: ReconcilePolicy
    lease_seconds: float
    """How long a claim (and a report lock) outlives its holder: past the hard limit."""
    max_claims: int
    """Deliveries of one task message before the order is declared dead."""
    call_deadline_seconds: float
    """How long a vendor call may still be running after it starts, when its adapter does not
    say (:attr:`vendors.base.VendorAdapter.call_deadline_seconds`): the task's hard limit,
    past which no call in the worker's process is left."""
    busy_countdown: float = 2.0
    """How soon to look again when another task holds the order's report."""
    replicas: RetryPolicy = RetryPolicy(max_retries=0, base=1.0, cap=30.0)
    """When to try again a task whose write the replicas did not confirm
    (``REDIS_WAIT_REPLICAS``): never given up (it is Redis, not the order), capped low so
    work resumes soon after the replicas are back."""


def policies_from(settings: Settings) -> Policies:
    """The policies ``settings`` ask for (a process takes them from its
    :class:`~fulfillment.services.Services`, which builds them once)."""

    def retry(max_retries: int) -> RetryPolicy:
        return RetryPolicy(
            max_retries=max_retries,
            base=settings.retry_backoff_seconds,
            cap=settings.retry_backoff_max_seconds,
            limit=settings.max_countdown_seconds,
        )

    return Policies(
        provision=retry(settings.provision_max_retries),
        report=retry(settings.report_max_retries),
        reconcile=ReconcilePolicy(
            interval=settings.reconcile_interval_seconds,
            lock_seconds=settings.reconcile_lock_ttl,
            stuck_after=settings.stuck_after_seconds,
            page_size=settings.reconcile_page_size,
            budget=settings.reconcile_budget_seconds,
            retention=settings.ledger_retention_days * 86400 or None,
        ),
        lease_seconds=settings.claim_lease_seconds,
        max_claims=settings.max_deliveries,
        call_deadline_seconds=settings.task_time_limit_seconds,
    )
