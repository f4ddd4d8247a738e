"""Reconciliation: lost webhooks, stuck records, unreported outcomes, cost, the lock.

The first group calls the plain function in-process against a real Redis and the
sandbox as a real process (what it enqueues is recorded, not sent). The second group
runs celery beat, a worker and the receiver from the Procfile and watches orders that
lost their webhook, or their report, get fulfilled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import build_settings, explicit_settings
from fulfillment.ledger import Notice
from fulfillment.ledger.locks import RedisLock
from fulfillment.runtime.clients import pax8_client
from fulfillment.workflow.reconcile import ReconcilePolicy, last_run, reconcile
from pax8.client import Pax8Client
from tests.support.procs import wait_until
from tests.support.publisher import RecordingPublisher
from tests.support.stack import Stack, unique_domain

ROUTES = explicit_settings().routes
"""One route, VENDOR_ADAPTER's: no routes file here."""


def policy(**overrides: Any) -> ReconcilePolicy:
    values: dict[str, Any] = {
        "interval": 60.0,
        "lock_seconds": 30.0,
        "stuck_after": 600.0,
        "page_size": 10,
    }
    values.update(overrides)
    return ReconcilePolicy(**values)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Stack, Pax8Client]]:
    stack = Stack(tmp_path)
    env = {key.lower(): value for key, value in stack.sandbox.env().items()}
    client = pax8_client(build_settings(**env))
    try:
        yield stack, client
    finally:
        client.close()
        stack.stop()


def op_calls(stack: Stack, operation: str) -> int:
    return int(stack.sandbox.calls()["by_operation"].get(operation, 0))


def api_calls(stack: Stack) -> int:
    """Provisioning API calls the sandbox counted (token fetches left out)."""
    by_operation = stack.sandbox.calls()["by_operation"]
    return sum(n for op, n in by_operation.items() if "/v1/token" not in op)


def test_unknown_requests_are_recovered_with_at_most_three_calls_each(
    world: tuple[Stack, Pax8Client],
) -> None:
    stack, pax8 = world
    failed = stack.sandbox.bulk(3, attempt_status="Failed")
    acknowledged = stack.sandbox.bulk(2, attempt_status="Acknowledged")
    bare = stack.sandbox.bulk(1, attempt_status=None)
    simulated = stack.sandbox.bulk(2, environment="simulation", attempt_status="Failed")
    stack.sandbox.reset_calls()
    publisher = RecordingPublisher()

    summary = reconcile(stack.ledger, pax8, publisher, policy(), force=True, routes=ROUTES)

    unknown = len(failed) + len(acknowledged) + len(bare) + len(simulated)
    assert summary.seen == unknown and summary.enqueued == unknown
    assert summary.attempts_created == len(failed) + len(bare) + len(simulated)
    assert summary.errors == []
    assert {p[1] for p in publisher.provisioned} == {
        r["id"] for r in failed + acknowledged + bare + simulated
    }
    assert sum(p[3] for p in publisher.provisioned) == len(simulated)
    # Cost: the page calls plus at most three per unknown request.
    assert summary.api_calls == api_calls(stack)
    assert summary.api_calls <= summary.pages + 3 * unknown
    assert op_calls(stack, "POST /v2/provision-requests/{id}/attempts") == summary.attempts_created
    # Each recovered request now owes a result to an acknowledged attempt.
    for created in failed:
        record = stack.record(created["id"])
        assert record is not None and record.state == "queued"
        (attempt,) = stack.ledger.attempts(created["id"])
        latest = stack.sandbox.request(created["id"])["attempts"][-1]
        assert attempt.id == latest["id"] and latest["status"] == "Acknowledged"


def test_requests_in_flight_cost_only_the_page_calls(world: tuple[Stack, Pax8Client]) -> None:
    stack, pax8 = world
    stack.sandbox.bulk(30, attempt_status="Acknowledged")
    publisher = RecordingPublisher()
    first = reconcile(stack.ledger, pax8, publisher, policy(), force=True, routes=ROUTES)
    assert first.enqueued == 30
    stack.sandbox.reset_calls()

    again = reconcile(stack.ledger, pax8, publisher, policy(), force=True, routes=ROUTES)

    assert again.in_flight == 30 and again.enqueued == 0
    assert len(publisher.provisioned) == 30  # nothing enqueued twice
    assert again.pages == 3
    # Three production pages of 10 and the (empty) simulation listing: no per-request call.
    assert api_calls(stack) == again.api_calls == 4
    assert op_calls(stack, "GET /v2/provision-requests/unfulfilled") == 4


def test_stuck_and_unreported_records_are_picked_up(world: tuple[Stack, Pax8Client]) -> None:
    stack, pax8 = world
    queued = Notice("stuck-1", "d1", "a1", "NetNew", False, "{}")
    finished = Notice("done-1", "d2", "a2", "Update", True, "{}")
    for notice in (queued, finished):
        stack.ledger.accept(notice)
        stack.ledger.mark_queued(stack.ledger.resolve(notice.request_id), notice.detail_id)
    claim = stack.ledger.claim(stack.ledger.resolve("done-1"), "d2", "task-1", 60, 5)
    assert claim.action == "claimed"
    stack.ledger.finish(stack.ledger.resolve("done-1"), "d2", "task-1", "Success", {}, {})
    publisher = RecordingPublisher()

    # Thresholds of zero: every record counts as old enough.
    summary = reconcile(
        stack.ledger,
        pax8,
        publisher,
        policy(stuck_after=0.0, interval=0.001),
        force=True,
        routes=ROUTES,
    )

    assert summary.requeued == 1 and summary.rereported == 1
    assert publisher.provisioned == [("NetNew", "stuck-1", "d1", False)]
    assert publisher.reported == ["done-1"]
    events = [entry["event"] for entry in stack.ledger.history("stuck-1")]
    assert events[-2:] == ["requeued", "enqueued"]


def test_a_result_refused_for_an_attempt_pax8_acknowledges_is_owed_again(
    world: tuple[Stack, Pax8Client],
) -> None:
    stack, pax8 = world
    (acked,) = stack.sandbox.bulk(1, attempt_status="Acknowledged")
    (failed,) = stack.sandbox.bulk(1, attempt_status="Failed")
    for created in (acked, failed):
        notice = Notice(created["id"], created["detailId"], created["attemptId"], "NetNew", False,
                        "{}")  # fmt: skip
        stack.ledger.accept(notice)
        claim = stack.ledger.claim(
            stack.ledger.resolve(created["id"]), created["detailId"], "t", 60, 5
        )
        assert claim.action == "claimed"
        stack.ledger.finish(
            stack.ledger.resolve(created["id"]), created["detailId"], "t", "Success", {}, {}
        )
        # Settled without a result, as when Pax8 refused it before counting the attempt.
        state = stack.ledger.settle(
            stack.ledger.resolve(created["id"]),
            created["attemptId"],
            None,
            status="rejected",
            note="400 Issued",
        )
        assert state == "reported"
    publisher = RecordingPublisher()

    summary = reconcile(stack.ledger, pax8, publisher, policy(), force=True, routes=ROUTES)

    assert summary.reopened == 1 and publisher.reported == [acked["id"]]
    record = stack.record(acked["id"])
    assert record is not None and record.state == "provisioned"
    assert [a.status for a in stack.ledger.attempts(acked["id"])] == ["pending"]
    events = [entry["event"] for entry in stack.ledger.history(acked["id"])]
    assert events[-3:] == ["result-rejected", "reported", "reopened"]
    # An attempt Pax8 itself counts as Failed is not owed a result: left as it is.
    record = stack.record(failed["id"])
    assert record is not None and record.state == "reported"
    assert [a.status for a in stack.ledger.attempts(failed["id"])] == ["rejected"]


def test_one_run_at_a_time_and_once_per_interval(world: tuple[Stack, Pax8Client]) -> None:
    stack, pax8 = world
    publisher = RecordingPublisher()
    holder = RedisLock(stack.redis(), "ff:lock:reconcile", ttl_seconds=1.0)
    assert holder.acquire()  # a holder that will die without releasing
    blocked = reconcile(stack.ledger, pax8, publisher, policy(interval=0.5), routes=ROUTES)
    assert not blocked.ran and "running" in blocked.skipped_reason
    # The dead holder's lock expires; the next run goes ahead.
    ran = wait_until(
        lambda: (
            (r := reconcile(stack.ledger, pax8, publisher, policy(interval=5), routes=ROUTES)).ran
            and r
        ),
        5,
    )
    assert ran.ran
    throttled = reconcile(stack.ledger, pax8, publisher, policy(interval=5), routes=ROUTES)
    assert not throttled.ran and "interval" in throttled.skipped_reason
    assert last_run(stack.ledger)[0] == 1
    assert not holder.release()  # the expired holder cannot delete someone else's lock


# -- with beat, worker and receiver ------------------------------------------------------


@pytest.fixture
def beat_stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(
        tmp_path,
        env={"RECONCILE_INTERVAL_SECONDS": "3", "REPORT_MAX_RETRIES": "1"},
    )
    try:
        stack.start_receiver()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()


def test_a_dropped_webhook_is_fulfilled_within_one_interval(beat_stack: Stack) -> None:
    stack = beat_stack
    stack.sandbox.add_fault(path="webhook", action="drop", times=1)
    order = stack.sandbox.order(
        wait=True, order={"provisionRequest": {"companyDomain": unique_domain()}}
    )
    request_id = order["provisionRequest"]["id"]
    assert stack.sandbox.request(request_id)["attempts"][0]["status"] == "Failed"
    assert stack.record(request_id) is None  # the worker never heard of it
    stack.start_beat()
    started = time.monotonic()
    (result,) = stack.wait_results(1, timeout=30, request_id=request_id)
    assert time.monotonic() - started < 3 + 10  # one interval, plus the work itself
    attempts = stack.sandbox.request(request_id)["attempts"]
    assert [a["status"] for a in attempts] == ["Failed", "Acknowledged"]
    assert result["provisionAttemptId"] == attempts[1]["id"] and result["status"] == "Success"
    stack.wait_state(request_id, "reported")


def test_an_outcome_stuck_unreported_is_reported_after_pax8_recovers(beat_stack: Stack) -> None:
    stack = beat_stack
    stack.sandbox.add_fault(
        method="POST", path="/v2/provision-requests/*/results", action="error", status=500
    )
    body = stack.sandbox_notification()
    request_id = body["provisionRequest"]["id"]
    assert stack.post_webhook(body).status_code == 202
    stack.wait_state(request_id, "provisioned")
    stack.procs[-1].wait_log("report-deferred", timeout=30)  # the report gave up for now
    assert stack.sandbox.results(request_id=request_id) == []
    stack.sandbox.clear_faults()
    stack.start_beat()
    stack.wait_state(request_id, "reported", timeout=30)
    assert len(stack.sandbox.results(request_id=request_id)) == 1


def test_two_beats_make_one_reconciliation_per_interval(beat_stack: Stack) -> None:
    stack = beat_stack
    stack.start_beat("beat-a")
    stack.start_beat("beat-b")
    wait_until(lambda: last_run(stack.ledger)[0] >= 1, 20)
    first, _ = last_run(stack.ledger)
    window = 12.0
    time.sleep(window)  # observing a rate needs a fixed window
    runs = last_run(stack.ledger)[0] - first
    skips = sum(proc.log().count("ran within this interval") for proc in stack.procs)
    # Two beats send two tasks per 3 s interval; at most one per interval may run.
    assert runs <= window / 3 + 1, (runs, skips)
    assert runs >= window / 3 - 2, (runs, skips)
