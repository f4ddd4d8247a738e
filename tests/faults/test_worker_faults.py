"""Faults 1–5: workers killed, stopped and poisoned, with orders in their hands."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import (
    FAULT_ENV,
    count_and_check,
    recorded_provisionings,
    results_by_request,
    slow_stack,
    tally,
)
from tests.support.adapters import calls
from tests.support.procs import wait_until
from tests.support.sentry_server import SentryServer
from tests.support.stack import Stack
from tests.support.vendor_stub import Script, VendorStub


@pytest.fixture
def vendor() -> Iterator[VendorStub]:
    with VendorStub() as stub:
        yield stub


def http_stack(tmp_path: Path, vendor: VendorStub, **env: str) -> Stack:
    return Stack(
        tmp_path,
        env={
            **FAULT_ENV,
            "VENDOR_ADAPTER": "http",
            "VENDOR_HTTP_URL": vendor.url,
            "VENDOR_HTTP_TIMEOUT_SECONDS": "7",
            **env,
        },
    )


def test_fault_01_pool_child_killed_after_the_vendor_call(
    tmp_path: Path, vendor: VendorStub
) -> None:
    stack = http_stack(tmp_path, vendor)
    try:
        stack.start_receiver()
        worker = stack.start_worker(concurrency=1)
        vendor.then(Script(delay_after=6))  # the vendor does the work, then answers late
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        wait_until(lambda: vendor.provisionings(request_id), 20)
        killed = stack.kill_pool_child(worker)
        at_kill = time.time()
        stack.wait_state(request_id, "reported", timeout=40)
        reported_after = time.time() - at_kill
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(vendor.provisionings(request_id))
        first, *repeats = vendor.arrived(request_id)
        tally(
            "01 SIGKILL pool child after vendor call",
            1,
            len(results),
            provisioned,
            provisioned - 1,
            f"vendor calls={len(vendor.calls_for(request_id))}, repeat "
            f"{repeats[0] - first:.1f}s after the first call (deadline 7s), "
            f"reported {reported_after:.1f}s after the kill",
        )
        assert killed not in stack.pool_children(worker)
        assert [r["status"] for r in results] == ["Success"]
        assert provisioned == 1
        assert len(vendor.calls_for(request_id)) == 2  # the repeat carried the same key
        assert repeats[0] - first > 6.5  # not before the first call's deadline (7 s from its claim)
    finally:
        stack.stop()


def test_fault_02_worker_main_process_killed_mid_task(tmp_path: Path) -> None:
    stack = slow_stack(tmp_path, 3)
    try:
        stack.start_receiver()
        first = stack.start_worker("worker-a", concurrency=1)
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        wait_until(lambda: calls(stack.redis(), request_id, "started"), 20)
        first.signal(signal.SIGKILL)  # the main process only: its message stays unacked
        first.popen.wait(10)
        stack.start_worker("worker-b", concurrency=1)
        stack.wait_state(request_id, "reported", timeout=60)
        # The redelivered message (after the visibility timeout) must not provision again.
        wait_until(
            lambda: (
                not stack.redis().hlen("unacked") and not stack.redis().llen("fulfillment.net_new")
            ),
            40,
            message="the killed worker's message was never redelivered and acknowledged",
        )
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(calls(stack.redis(), request_id, "provisioned"))
        tally(
            "02 SIGKILL worker main process mid-task", 1, len(results), provisioned, provisioned - 1
        )
        assert len(results) == 1 and results[0]["status"] == "Success"
        assert provisioned == 1
    finally:
        stack.stop()


def test_fault_03_warm_shutdown_during_a_long_vendor_call(tmp_path: Path) -> None:
    stack = slow_stack(tmp_path, 4)
    try:
        stack.start_receiver()
        worker = stack.start_worker("worker-a", concurrency=1)
        bodies = [stack.sandbox_notification() for _ in range(3)]
        ids = [b["provisionRequest"]["id"] for b in bodies]
        for body in bodies:
            assert stack.post_webhook(body).status_code == 202
        wait_until(lambda: calls(stack.redis(), ids[0], "started"), 20)
        worker.signal(signal.SIGTERM)
        assert worker.popen.wait(30) == 0  # warm: the running order finished first
        assert calls(stack.redis(), ids[0], "provisioned")
        stack.start_worker("worker-b", concurrency=1)  # finishes what was left queued
        for request_id in ids:
            stack.wait_state(request_id, "reported", timeout=60)
        count_and_check(
            stack,
            "03 SIGTERM during a long vendor call",
            ids,
            provisioned=recorded_provisionings(stack, ids),
        )
    finally:
        stack.stop()


def test_fault_04_worker_killed_holding_a_countdown_retry(
    tmp_path: Path, vendor: VendorStub
) -> None:
    # The beat runs as in production: where the kill lands decides which path brings the
    # retry back, and every path must end in one provisioning and one result.
    stack = http_stack(tmp_path, vendor, RETRY_BACKOFF_SECONDS="4", RECONCILE_INTERVAL_SECONDS="2")
    try:
        stack.start_receiver()
        first = stack.start_worker("worker-a", concurrency=1)
        vendor.then(Script(status=503, body={"message": "down for a moment"}))
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        record = stack.wait_state(request_id, "queued", timeout=20)
        wait_until(lambda: (r := stack.record(request_id)) and r.retries == 1, 20)
        # The whole worker, around the moment it takes the retry's ETA message: still
        # queued (the next worker takes it), held unacknowledged (back after the
        # visibility timeout), or popped by BRPOP but not yet recorded as unacknowledged
        # (gone from Redis: reconciliation requeues it from the ledger).
        first.kill()
        stack.start_worker("worker-b", concurrency=1)
        stack.start_beat()
        stack.wait_state(request_id, "reported", timeout=60)
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(vendor.provisionings(request_id))
        events = [entry["event"] for entry in stack.ledger.history(request_id)]
        tally(
            "04 worker killed holding a countdown retry",
            1,
            len(results),
            provisioned,
            provisioned - 1,
            f"vendor calls={len(vendor.calls_for(request_id))}, "
            f"back by {'reconciliation' if 'requeued' in events else 'the broker'}",
        )
        assert record.state == "queued"
        assert [r["status"] for r in results] == ["Success"]
        assert provisioned == 1 and len(vendor.calls_for(request_id)) == 2
    finally:
        stack.stop()


def test_fault_04b_a_message_popped_by_a_consumer_that_died_before_recording_it(
    tmp_path: Path,
) -> None:
    # Kombu's Redis transport takes a message with BRPOP and only then records it as
    # unacknowledged: a worker killed between the two leaves it nowhere in Redis. This
    # stages that state exactly (the test is the consumer that pops and dies) so the
    # ledger's safety net is shown every run, not only when fault 04's kill lands there.
    # Short limits keep "stuck" (visibility timeout + time limit) at 12 s.
    stack = Stack(
        tmp_path,
        env={
            **FAULT_ENV,
            "TASK_SOFT_TIME_LIMIT_SECONDS": "3",
            "TASK_TIME_LIMIT_SECONDS": "4",
            "VISIBILITY_TIMEOUT_SECONDS": "8",
            "RETRY_BACKOFF_MAX_SECONDS": "2",
            "RECONCILE_INTERVAL_SECONDS": "2",
        },
    )
    try:
        stack.start_receiver()
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        stack.wait_state(request_id, "queued", timeout=20)
        popped = stack.redis().rpop("fulfillment.net_new")
        assert popped is not None and request_id in popped
        assert not stack.redis().llen("fulfillment.net_new") and not stack.redis().hlen("unacked")
        stack.start_worker(concurrency=1)
        stack.start_beat()
        stack.wait_state(request_id, "reported", timeout=40)
        events = [entry["event"] for entry in stack.ledger.history(request_id)]
        count_and_check(
            stack,
            "04b message popped, consumer died before recording it",
            [request_id],
            "back by reconciliation",
        )
        assert events.count("requeued") == 1
    finally:
        stack.stop()


def test_fault_05_a_task_that_kills_its_worker_every_time(tmp_path: Path) -> None:
    with SentryServer() as sentry:
        stack = Stack(
            tmp_path,
            env={
                **FAULT_ENV,
                "VENDOR_ADAPTER": "tests.support.adapters:KillerAdapter",
                "MAX_DELIVERIES": "3",
                "SENTRY_DSN": sentry.dsn,
                # Each redelivery waits out the killed call's deadline: keep it short here.
                "TEST_ADAPTER_CALL_DEADLINE_SECONDS": "2",
            },
        )
        try:
            stack.start_receiver()
            worker = stack.start_worker(concurrency=1)
            body = stack.sandbox_notification()
            request_id = body["provisionRequest"]["id"]
            assert stack.post_webhook(body).status_code == 202
            record = stack.wait_state(request_id, "dead", timeout=60)
            wait_until(
                lambda: any(
                    (e.get("tags") or {}).get("provision_request_id") == request_id
                    for e in sentry.events()
                ),
                20,
            )
            # No loop: the poisoned message is gone, the worker is alive and idle.
            wait_until(
                lambda: (
                    not stack.redis().hlen("unacked")
                    and not stack.redis().llen("fulfillment.net_new")
                ),
                20,
            )
            attempts = len(calls(stack.redis(), request_id, "killed"))
            results = stack.sandbox.results(request_id=request_id)
            tally(
                "05 task kills its worker every time",
                1,
                len(results),
                0,
                0,
                f"deliveries={attempts} then dead",
            )
            assert attempts == 3
            assert "lost with its worker" in record.error
            assert results == []  # nothing reported: an operator decides
            assert worker.alive()
        finally:
            stack.stop()
