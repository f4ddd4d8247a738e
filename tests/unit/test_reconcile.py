"""Reconciliation in-process: the plain function over the sandbox's Pax8 and a real Redis.

The process tests (``tests/test_reconcile.py``) run it from celery beat; here each branch is
driven directly: an unknown request is recovered, one in flight costs no call, a stuck one
is queued again, a finished one reported again, and one run at a time.
"""

from __future__ import annotations

from fulfillment.ledger import Notice
from fulfillment.ledger.locks import RedisLock
from fulfillment.ledger.states import State
from fulfillment.services import Services
from fulfillment.workflow.policies import ReconcilePolicy
from fulfillment.workflow.reconcile import reconcile
from tests.unit.conftest import Pax8World, RecordingPublisher, ServicesFactory


def policy(**overrides: float) -> ReconcilePolicy:
    values = {"interval": 60.0, "lock_seconds": 30.0, "stuck_after": 600.0, "page_size": 10}
    return ReconcilePolicy(**{**values, **overrides})  # type: ignore[arg-type]


def run(services: Services, **overrides: float) -> RecordingPublisher:
    publisher = services.publisher
    assert isinstance(publisher, RecordingPublisher)
    summary = reconcile(
        services.ledger,
        services.pax8,
        publisher,
        policy(**overrides),
        True,
        routes=services.settings.routes,
    )
    assert summary.ran and summary.errors == [], summary
    return publisher


def test_an_unknown_request_is_enqueued_with_an_acknowledged_attempt(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services()
    (lost,) = pax8.bulk(1, attempt_status="Failed")  # its webhook never arrived

    publisher = run(services)

    assert [p[1] for p in publisher.provisioned] == [lost["id"]]
    record = services.ledger.get(lost["id"])
    assert record is not None and record.state is State.QUEUED
    (attempt,) = services.ledger.attempts(lost["id"])
    latest = pax8.request(lost["id"])["attempts"][-1]
    assert attempt.id == latest["id"] != lost["attemptId"] and latest["status"] == "Acknowledged"


def test_requests_in_flight_are_left_alone(make_services: ServicesFactory, pax8: Pax8World) -> None:
    services = make_services()
    pax8.bulk(3, attempt_status="Acknowledged")
    first = run(services)
    assert len(first.provisioned) == 3
    again = run(services)
    assert len(again.provisioned) == 3  # nothing enqueued a second time


def test_stuck_and_unreported_records_are_picked_up(make_services: ServicesFactory) -> None:
    services = make_services()
    ledger = services.ledger
    for notice in (
        Notice("stuck-1", "d1", "a1", "NetNew", False, "{}"),
        Notice("done-1", "d2", "a2", "Update", True, "{}"),
    ):
        ledger.accept(notice)
        ledger.mark_queued(ledger.resolve(notice.request_id), notice.detail_id)
    ledger.claim(ledger.resolve("done-1"), "d2", "t", 60, 5)
    ledger.finish(ledger.resolve("done-1"), "d2", "t", "Success", {}, {})

    publisher = run(services, stuck_after=0.0, interval=0.001)

    assert publisher.provisioned == [("NetNew", "stuck-1", "d1", False)]
    assert publisher.reported == ["done-1"]


def test_one_run_at_a_time(make_services: ServicesFactory) -> None:
    services = make_services()
    holder = RedisLock(services.redis, "ff:lock:reconcile", ttl_seconds=30)
    assert holder.acquire()
    summary = reconcile(
        services.ledger,
        services.pax8,
        services.publisher,
        policy(),
        True,
        routes=services.settings.routes,
    )
    assert not summary.ran and "running" in summary.skipped_reason
