"""The one outcome type that travels from a domain function to the task that called it.

:func:`fulfillment.workflow.provisioning.provision` and
:func:`fulfillment.workflow.reporting.report` both answer with an :class:`Outcome`; a task
only maps :attr:`Outcome.next` to Celery (report now, retry with a countdown, alert, or
nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fulfillment.ledger.records import ReportStart
from fulfillment.ledger.states import State


class Next(StrEnum):
    """What the caller should do next."""

    DONE = "done"  # nothing more now (reported, nothing owed, or left for reconciliation)
    REPORT = "report"  # the vendor's outcome is stored: report it now
    RETRY = "retry"  # try the same work again after ``countdown`` seconds
    DEAD = "dead"  # given up: alert an operator (Sentry), nothing more is tried


@dataclass(frozen=True)
class Outcome:
    """What one run of a domain function came to."""

    next: Next
    reason: str = ""
    countdown: float = 0.0
    error: BaseException | None = None
    state: State | None = None
    alert: bool = False
    """Send ``error`` to Sentry although the order is not dead (it needs an operator)."""
    backend: str = ""
    """The route whose backend the outcome is about (a tag of the alert), when one is."""
    report: ReportStart | None = None
    """The report run that storing the outcome started, in the same round trip (its lock
    owned by the task): :func:`~fulfillment.workflow.provisioning.fulfil` reports with it."""

    @classmethod
    def done(cls, reason: str = "", state: State | None = None) -> Outcome:
        """Nothing more to do now."""
        return cls(Next.DONE, reason, state=state)

    @classmethod
    def retry(cls, countdown: float, reason: str, error: BaseException | None = None) -> Outcome:
        """Try again in ``countdown`` seconds."""
        return cls(Next.RETRY, reason, countdown=countdown, error=error)

    @classmethod
    def dead(cls, reason: str, error: BaseException | None = None) -> Outcome:
        """Given up; ``error`` (if any) goes to Sentry with the reason."""
        return cls(Next.DEAD, reason, error=error, state=State.DEAD)
