"""A publisher that records what would be enqueued, for the domain functions under test."""

from __future__ import annotations

from dataclasses import dataclass, field

from fulfillment.ledger.refs import Ref


@dataclass
class RecordingPublisher:
    """Collects the tasks a domain function would send (and builds no raw message, so the
    ledger leaves the publishing to :meth:`provision`)."""

    provisioned: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(type, request id, detail id, simulation) per provisioning task."""
    reported: list[str] = field(default_factory=list)
    """Request ids, one per report task."""
    countdowns: list[float | None] = field(default_factory=list)
    """The countdown of each report task, in the order of :attr:`reported`."""
    refs: list[Ref] = field(default_factory=list)
    """Every ref a task was sent for, in order."""
    routes: list[str] = field(default_factory=list)
    """The route of each provisioning task, in the order of :attr:`provisioned`."""

    def provision(self, ref: Ref, request_type: str, detail_id: str, route: str) -> None:
        self.provisioned.append((request_type, ref.id, detail_id, ref.simulation))
        self.routes.append(route)
        self.refs.append(ref)

    def provision_message(self, ref: Ref, request_type: str, detail_id: str, route: str) -> None:
        return None

    def report(self, ref: Ref, countdown: float | None = None) -> None:
        self.reported.append(ref.id)
        self.countdowns.append(countdown)
        self.refs.append(ref)
