"""What the usage store keeps, as types: subscriptions, job outcomes, post records, runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from fulfillment.ledger.refs import Scope
from fulfillment.usage import periods


class JobOutcome(StrEnum):
    """How one job (a subscription's period, one day) ended."""

    POSTED = "posted"
    """Every batch of the source's lines was accepted by Pax8 (a 2xx)."""
    EMPTY = "empty"
    """The source has no lines for the period: nothing to post, nothing owed."""
    REFUSED = "refused"
    """Pax8 refused a batch (4xx): retrying the same lines cannot help."""
    TOO_LATE = "too_late"
    """The period's cutoff passed: not sent (Pax8 would refuse it)."""
    FAILED = "failed"
    """Pax8 (or the source) kept failing past the retry budget."""
    SOURCE_ERROR = "source_error"
    """The source refused or returned lines Pax8 would refuse (a vendor bug)."""

    @property
    def satisfied(self) -> bool:
        """Whether Pax8 holds what the source says (or there is nothing to hold)."""
        return self in (JobOutcome.POSTED, JobOutcome.EMPTY)


class RunState(StrEnum):
    """A day's run."""

    RUNNING = "running"
    DONE = "done"


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(float(value), UTC)


@dataclass(frozen=True)
class Subscription:
    """A subscription the worker provisioned, as usage reporting knows it."""

    scope: Scope
    id: str
    activated_at: datetime | None
    """When it became active (the usage clock); None: before this worker recorded it."""
    ended_at: datetime | None = None
    """When its deprovisioning succeeded (the usage clock); None while it is active."""
    product_id: str | None = None
    company_id: str | None = None
    company_name: str | None = None
    partner_id: str | None = None
    external_id: str | None = None
    """The vendor's own id for it (``externalProvisionerSubscriptionId``)."""
    quantity: int | None = None
    type: str = ""
    """The type of the last order that changed it."""
    route: str = ""
    """The route (backend) of its last order, with a routes file: its usage source."""

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> Subscription:
        """Build from the Redis hash."""
        quantity = data.get("quantity")
        return cls(
            scope=Scope(data["scope"]),
            id=data["id"],
            activated_at=_time(data.get("activated_at")),
            ended_at=_time(data.get("ended_at")),
            product_id=data.get("product_id") or None,
            company_id=data.get("company_id") or None,
            company_name=data.get("company_name") or None,
            partner_id=data.get("partner_id") or None,
            external_id=data.get("external_id") or None,
            quantity=int(quantity) if quantity and quantity.lstrip("-").isdigit() else None,
            type=data.get("type", ""),
            route=data.get("route", ""),
        )

    @property
    def member(self) -> str:
        """``<scope>:<id>``."""
        return f"{self.scope}:{self.id}"

    @property
    def simulation(self) -> bool:
        """Whether it lives in Pax8's simulation environment."""
        return self.scope is Scope.PAX8_SIMULATION

    def active_in(self, period: str) -> bool:
        """Whether it was active at some moment of ``period``."""
        if self.activated_at is not None and self.activated_at >= periods.end(period):
            return False
        return self.ended_at is None or self.ended_at >= periods.start(period)

    def summary(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "scope": str(self.scope),
            "subscriptionId": self.id,
            "activatedAt": self.activated_at.isoformat() if self.activated_at else None,
            "endedAt": self.ended_at.isoformat() if self.ended_at else None,
            "productId": self.product_id,
            "companyId": self.company_id,
            "externalSubscriptionId": self.external_id,
            "quantity": self.quantity,
        }


@dataclass(frozen=True)
class Claim:
    """What claiming a job answered."""

    action: str
    """``claimed``, ``busy`` (another holder's lease runs) or ``done`` (finished already)."""
    attempts: int = 0
    next_batch: int = 0
    lines: str = ""
    """The lines snapshot a job handed back after a 429 (JSON), to resume at ``next_batch``."""
    subscription: Subscription | None = None
    """The job's subscription, read with the claim (None when the registry lacks it)."""


@dataclass(frozen=True)
class DayRun:
    """One day's run as the store keeps it."""

    day: str
    state: RunState
    jobs: int
    pending: int
    counts: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0
    finished_at: float = 0.0
    now: str = ""
    """The usage clock's time the run was planned at (ISO)."""
