"""What sends tasks by name: the receiver, reconciliation and replay enqueue through it.

``worker/publish.py`` implements it on a Celery app (tasks go by name, so the receiver never
imports task code); tests record what would be sent (``tests/support/publisher.py``).
"""

from __future__ import annotations

from typing import Protocol

from fulfillment.ledger.refs import Ref


class Publisher(Protocol):
    """Sends tasks by name (the receiver never imports task code)."""

    def provision(self, ref: Ref, request_type: str, detail_id: str, route: str) -> None:
        """Enqueue the per-type provisioning task on ``route``'s queue (``fulfillment/names.py``:
        a route of the routes file has its own; the others, and ``""``, the per-type one)."""

    def provision_message(
        self, ref: Ref, request_type: str, detail_id: str, route: str
    ) -> tuple[str, str] | None:
        """(queue, raw message) of that task, for an atomic enqueue by the ledger; or None."""

    def report(self, ref: Ref, countdown: float | None = None) -> None:
        """Enqueue the report task."""
