"""Faults 6–8: Redis restarted, killed, and frozen under the receiver and the workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.faults.conftest import (
    FAULT_ENV,
    bulk_notifications,
    count_and_check,
    recorded_provisionings,
    slow_stack,
    wait_all_reported,
)
from tests.support.adapters import calls
from tests.support.procs import wait_until
from tests.support.stack import Stack


def test_fault_06a_redis_restarted_with_200_orders_in_flight(tmp_path: Path) -> None:
    stack = Stack(tmp_path, env=FAULT_ENV)
    try:
        stack.start_receiver()
        worker = stack.start_worker(concurrency=2)
        bodies = bulk_notifications(stack, 200)
        ids = [b["provisionRequest"]["id"] for b in bodies]
        for body in bodies:
            assert stack.post_webhook(body).status_code == 202
        before = stack.ledger.counts()
        stack.redis_server.stop()  # SIGTERM: the AOF is flushed
        stack.redis_server.start()
        wait_all_reported(stack, ids, timeout=150)
        assert worker.alive(), "the worker exited on the connection loss"
        count_and_check(
            stack,
            "06a Redis restarted (AOF), 200 orders",
            ids,
            f"reported before restart={before['reported']}",
        )
    finally:
        stack.stop()


def test_fault_06b_redis_kill9_with_fsync_always_keeps_every_202(tmp_path: Path) -> None:
    stack = Stack(tmp_path, env=FAULT_ENV, redis_appendfsync="always")
    try:
        stack.start_receiver()
        bodies = bulk_notifications(stack, 400)
        answers: dict[str, int] = {}
        stop = threading.Event()

        def post_all() -> None:
            for body in bodies:
                if stop.is_set():
                    return
                try:
                    code = stack.post_webhook(body).status_code
                except Exception:  # noqa: BLE001 - the receiver may drop the connection
                    code = 0
                answers[body["provisionRequest"]["id"]] = code

        poster = threading.Thread(target=post_all)
        poster.start()
        wait_until(lambda: sum(1 for c in answers.values() if c == 202) >= 100, 30)
        stack.redis_server.kill()  # kill -9 mid-stream
        wait_until(lambda: sum(1 for c in answers.values() if c != 202) >= 5, 30)
        stop.set()
        poster.join(30)
        accepted = [i for i, code in answers.items() if code == 202]
        refused = [i for i, code in answers.items() if code != 202]
        assert all(answers[i] in (0, 503) for i in refused)
        stack.redis_server.start()
        stack.start_worker(concurrency=2)
        wait_all_reported(stack, accepted, timeout=150)
        count_and_check(
            stack,
            "06b Redis kill -9, appendfsync always",
            accepted,
            f"202s={len(accepted)} refused(503)={len(refused)}",
        )
    finally:
        stack.stop()


def test_fault_07_redis_restarted_while_the_worker_is_idle(tmp_path: Path) -> None:
    stack = Stack(tmp_path, env=FAULT_ENV)
    try:
        stack.start_receiver()
        worker = stack.start_worker(concurrency=1)
        warm = stack.sandbox_notification()
        assert stack.post_webhook(warm).status_code == 202
        stack.wait_state(warm["provisionRequest"]["id"], "reported")
        stack.redis_server.restart()
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        wait_until(lambda: stack.post_webhook(body).status_code == 202, 20)
        started = time.monotonic()
        stack.wait_state(request_id, "reported", timeout=30)
        took = time.monotonic() - started
        count_and_check(
            stack,
            "07 Redis restarted while the worker idles",
            [request_id],
            f"consumed after {took:.1f}s",
        )
        assert took < 30
        assert worker.alive()
    finally:
        stack.stop()


def test_fault_07b_redis_restarted_while_a_worker_holds_a_task_and_polls(
    tmp_path: Path,
) -> None:
    # The worker has one order in hand (unacknowledged) and a free process waiting in BRPOP:
    # the connection loss must neither end the worker nor lose or repeat the order.
    stack = slow_stack(tmp_path, 4)
    try:
        stack.start_receiver()
        worker = stack.start_worker(concurrency=2)
        held = stack.sandbox_notification()
        held_id = held["provisionRequest"]["id"]
        assert stack.post_webhook(held).status_code == 202
        wait_until(lambda: calls(stack.redis(), held_id, "started"), 20)
        stack.redis_server.restart()
        after = stack.sandbox_notification()
        after_id = after["provisionRequest"]["id"]
        wait_until(lambda: stack.post_webhook(after).status_code == 202, 20)
        for request_id in (held_id, after_id):
            stack.wait_state(request_id, "reported", timeout=60)
        assert worker.alive(), "the worker exited on the connection loss"
        ids = [held_id, after_id]
        count_and_check(
            stack,
            "07b Redis restarted, a task in hand, BRPOP waiting",
            ids,
            "worker stayed up",
            provisioned=recorded_provisionings(stack, ids),
        )
    finally:
        stack.stop()


def test_fault_08_redis_frozen(tmp_path: Path) -> None:
    stack = Stack(tmp_path, env=FAULT_ENV)
    try:
        stack.start_receiver()
        # A receiver that has served webhooks holds open Redis connections (each gunicorn
        # worker its pool): the frozen webhook's script goes out on one of them at once.
        warm = [stack.sandbox_notification() for _ in range(6)]
        assert all(stack.post_webhook(w).status_code == 202 for w in warm)
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        stack.redis_server.freeze()
        try:
            started = time.monotonic()
            response = stack.post_webhook(body)
            took = time.monotonic() - started
        finally:
            stack.redis_server.thaw()
        assert response.status_code == 503 and took < 3.0, (response.status_code, took)
        assert response.headers["Retry-After"].isdigit()
        # The record-and-enqueue script went out on a pooled connection before Redis froze:
        # Redis runs it when it wakes up, though the receiver gave up on the answer and said
        # 503. So the order is recorded with its task queued (or, if the webhook opened a new
        # connection, whose handshake timed out, not at all): never half-way, and Pax8's
        # retry is accepted either way.
        wait_until(lambda: stack.redis().ping(), 10)
        try:
            record = wait_until(lambda: stack.record(request_id), 1.0)
        except AssertionError:
            record = None
        recorded = record.state if record else "not recorded"
        assert record is None or record.state == "queued", recorded
        retry = stack.post_webhook(body)  # Pax8 delivers again
        expected = "queued" if record is None else "inflight"
        assert retry.status_code == 202 and retry.json()["action"] == expected, retry.json()
        stack.start_worker(concurrency=1)
        stack.wait_state(request_id, "reported", timeout=30)
        count_and_check(
            stack,
            "08 Redis frozen (SIGSTOP)",
            [request_id],
            f"503 after {took:.1f}s; after the thaw: {recorded}",
        )
    finally:
        stack.stop()
