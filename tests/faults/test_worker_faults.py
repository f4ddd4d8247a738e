"""Faults 1–5: workers killed, stopped and poisoned, with orders in their hands.

Every test runs with the default visibility timeout (an hour) and the default liveness
settings: what a dead worker held comes back once its heartbeat is gone
(``WORKER_LOST_AFTER_SECONDS``, 30 s), and the tests that measure it print how long.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulfillment.ledger.keys import BROKER_UNACKED
from tests.faults.conftest import (
    FAULT_ENV,
    HEARTBEAT,
    LOST_AFTER,
    WorkerPool,
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
from tests.support.vendor_stub import Keys, Script, VendorStub


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
    tmp_path: Path, vendor: VendorStub, pool: WorkerPool
) -> None:
    # Under gevent the process running the order is the worker itself: a second worker
    # takes its message once its heartbeat is gone.
    stack = http_stack(tmp_path, vendor, **pool.env)
    try:
        stack.start_receiver()
        worker = stack.start_worker(concurrency=1)
        vendor.then(Script(delay_after=6))  # the vendor does the work, then answers late
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        wait_until(lambda: vendor.provisionings(request_id), 20)
        killed = pool.kill_running(stack, worker)
        at_kill = time.time()
        if pool.green:
            stack.start_worker("worker-b", concurrency=1)
        stack.wait_state(request_id, "reported", timeout=40 + pool.redelivery_seconds)
        reported_after = time.time() - at_kill
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(vendor.provisionings(request_id))
        first, *repeats = vendor.arrived(request_id)
        tally(
            f"01 SIGKILL pool child after vendor call ({pool.name})",
            1,
            len(results),
            provisioned,
            provisioned - 1,
            f"vendor calls={len(vendor.calls_for(request_id))}, repeat "
            f"{repeats[0] - first:.1f}s after the first call (deadline 7s), "
            f"reported {reported_after:.1f}s after the kill",
        )
        assert killed not in stack.pool_children(worker)
        assert pool.green or worker.popen.poll() is None  # prefork: the worker lived on
        assert [r["status"] for r in results] == ["Success"]
        assert provisioned == 1
        assert len(vendor.calls_for(request_id)) == 2  # the repeat carried the same key
        assert repeats[0] - first > 6.5  # not before the first call's deadline (7 s from its claim)
    finally:
        stack.stop()


def test_fault_02_worker_main_process_killed_mid_task_another_worker_running(
    tmp_path: Path, pool: WorkerPool
) -> None:
    stack = slow_stack(tmp_path, 3, **pool.env)
    try:
        stack.start_receiver()
        first = stack.start_worker("worker-a", concurrency=1)
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        wait_until(lambda: calls(stack.redis(), request_id, "started"), 20)
        stack.start_worker("worker-b", concurrency=1)  # another worker, running already
        first.signal(signal.SIGKILL)  # the main process only: its message stays unacked
        killed = time.time()
        first.popen.wait(10)
        stack.wait_state(request_id, "reported", timeout=60)
        # The message comes back once worker-a's heartbeat is gone (not after the hour of
        # the visibility timeout), and its redelivery must not provision again.
        wait_until(
            lambda: (
                not stack.redis().hlen("unacked") and not stack.redis().llen("fulfillment.net_new")
            ),
            LOST_AFTER + 60,
            message="the killed worker's message was never redelivered and acknowledged",
        )
        back = time.time() - killed
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(calls(stack.redis(), request_id, "provisioned"))
        tally(
            f"02 SIGKILL worker main process mid-task ({pool.name})",
            1,
            len(results),
            provisioned,
            provisioned - 1,
            f"message back and acknowledged {back:.0f}s after the kill",
        )
        assert len(results) == 1 and results[0]["status"] == "Success"
        assert provisioned == 1
        assert back < LOST_AFTER + 2 * HEARTBEAT + 15
    finally:
        stack.stop()


def _held(stack: Stack) -> dict[str, tuple[int, str]] | None:
    """The messages the broker has delivered and not had acknowledged (kombu's unacked hash,
    one read), as each one's order (``scope:id``, from ``ff:broker:holders``) → its
    ``retries`` header and its entry; None if two are for the same order."""
    client = stack.redis()
    holders = client.hgetall("ff:broker:holders")
    held: dict[str, tuple[int, str]] = {}
    for tag, entry in client.hgetall(BROKER_UNACKED).items():
        order = holders.get(tag, f"? {tag}").partition(" ")[2]
        if order in held:
            return None
        held[order] = (int(json.loads(entry)[0]["headers"]["retries"]), entry)
    return held


def _retries(held: dict[str, tuple[int, str]] | None) -> dict[str, int] | None:
    """``held`` (:func:`_held`) as order → retries."""
    return None if held is None else {order: n for order, (n, _) in held.items()}


def _reported_at(stack: Stack, ids: list[str], timeout: float) -> dict[str, float]:
    """When each of ``ids`` was found reported (polled every 0.25 s)."""
    at: dict[str, float] = {}

    def all_reported() -> bool:
        for request_id in ids:
            record = stack.record(request_id)
            if request_id not in at and record is not None and record.state == "reported":
                at[request_id] = time.time()
        return len(at) == len(ids)

    wait_until(all_reported, timeout, 0.25, message=lambda: f"reported: {at}\n{stack.describe()}")
    return at


def test_fault_02b_whole_worker_killed_mid_call_and_holding_a_retry_a_replacement_finishes(
    tmp_path: Path, pool: WorkerPool
) -> None:
    # The vendor stores an Idempotency-Key's answer only when the work (5 s) finishes, and
    # the adapter's call deadline is 7 s: the repeat must not come before it. The worker
    # (main process and pool, SIGKILL to the group: an OOM kill, an evicted pod) holds one
    # order mid-call and one it took and has not started: a countdown retry waiting for its
    # time, the one kind of message a worker holds unstarted with prefetch 1 and late acks.
    with VendorStub(keys=Keys.ON_COMPLETION, work=5.0) as vendor:
        stack = http_stack(tmp_path, vendor, **pool.env)
        try:
            stack.start_receiver()
            first = stack.start_worker("worker-a", concurrency=1)
            vendor.then(Script(status=503, headers={"Retry-After": "20"}, body={"message": "x"}))
            held = stack.sandbox_notification()
            held_id = held["provisionRequest"]["id"]
            assert stack.post_webhook(held).status_code == 202
            wait_until(lambda: (r := stack.record(held_id)) is not None and r.retries == 1, 20)
            member = f"pax8:{held_id}"
            # The retry's own message (its retries header 1), not the first one: that one
            # is held until its task has returned, and an order posted before the retry is
            # published takes the one slot, so the worker never holds the retry.
            wait_until(lambda: _retries(_held(stack)) == {member: 1}, 20)
            mid = stack.sandbox_notification()
            mid_id = mid["provisionRequest"]["id"]
            assert stack.post_webhook(mid).status_code == 202
            (called,) = wait_until(lambda: vendor.arrived(mid_id), 20)
            # What kombu would restore in an hour: the held retry and the order mid-call,
            # nothing else, and nothing left queued (polled: the vendor sees the call as
            # soon as it starts, the hashes are the broker's and change apart from it).
            held_now = wait_until(
                lambda: (
                    (h := _held(stack))
                    and _retries(h) == {member: 1, f"pax8:{mid_id}": 0}
                    and not stack.redis().llen("fulfillment.net_new")
                    and h
                ),
                10,
                message=lambda: f"held: {_retries(_held(stack))}\n{stack.describe()}",
            )
            stale = [entry for _, entry in held_now.values()]
            first.kill()  # SIGKILL to the whole group, no graceful shutdown
            crashed = time.time()
            assert not vendor.provisionings(mid_id)  # killed in the middle of the work
            stack.start_worker("worker-b", concurrency=1)  # the replacement
            at = _reported_at(stack, [mid_id, held_id], timeout=150)
            mid_after, held_after = at[mid_id] - crashed, at[held_id] - crashed
            arrivals = vendor.arrived(mid_id)
            # The stale messages, back from kombu's visibility timeout an hour later (as it
            # would restore them: onto their queues), change nothing.
            for entry in stale:
                payload, _, routing_key = json.loads(entry)
                stack.redis().lpush(routing_key, json.dumps(payload))
            wait_until(
                lambda: (
                    not stack.redis().llen("fulfillment.net_new")
                    and not stack.redis().hlen("unacked")
                ),
                30,
                message="the stale messages were not consumed",
            )
            results = results_by_request(stack, [mid_id, held_id])
            provisioned = {rid: len(vendor.provisionings(rid)) for rid in (mid_id, held_id)}
            tally(
                f"02b whole worker SIGKILLed mid-call + a held retry; replacement ({pool.name})",
                2,
                sum(len(r) for r in results.values()),
                sum(provisioned.values()),
                sum(max(0, n - 1) for n in provisioned.values())
                + sum(max(0, len(r) - 1) for r in results.values()),
                f"crash to result: mid-call {mid_after:.1f}s (call deadline 7s), held retry "
                f"{held_after:.1f}s; repeat call {arrivals[-1] - called:.1f}s after the first; "
                "stale messages replayed: nothing changed",
            )
            assert [r["status"] for r in results[mid_id]] == ["Success"]
            assert [r["status"] for r in results[held_id]] == ["Success"]
            assert provisioned == {mid_id: 1, held_id: 1}
            # One repeat of the cut call, after its deadline (7 s from its claim), which got
            # the answer the first call stored; no call after the stale replay.
            assert len(arrivals) == 2 and arrivals[1] - called > 6.5
            assert vendor.arrived(mid_id) == arrivals  # the stale replay called nobody
            (done,) = vendor.provisionings(mid_id)
            sub = results[mid_id][0]["externalProvisionerSubscriptionId"]
            assert sub == done["answer"]["externalProvisionerSubscriptionId"]
            assert len(vendor.arrived(held_id)) == 2  # the 503, then one call
            # Within 2 minutes of the crash (plus the cut call's deadline for that one).
            assert mid_after < 120 + 7 and held_after < 120
            for request_id in (mid_id, held_id):
                events = [h["event"] for h in stack.ledger.history(request_id)]
                assert events.count("vendor") == 1, events
        finally:
            stack.stop()


def test_fault_03_warm_shutdown_during_a_long_vendor_call(tmp_path: Path, pool: WorkerPool) -> None:
    stack = slow_stack(tmp_path, 4, **pool.env)
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
            f"03 SIGTERM during a long vendor call ({pool.name})",
            ids,
            provisioned=recorded_provisionings(stack, ids),
        )
    finally:
        stack.stop()


def test_fault_03b_warm_shutdown_hands_back_a_held_retry_to_the_next_worker_at_once(
    tmp_path: Path, vendor: VendorStub
) -> None:
    # Worker a runs one order (10 s of vendor work) and holds a countdown retry due in 15 s;
    # worker b runs beside it. SIGTERM to a (a deploy): the running order finishes on a, and
    # the retry goes to b at once, not when a exits.
    stack = http_stack(
        tmp_path,
        vendor,
        TASK_SOFT_TIME_LIMIT_SECONDS="20",
        TASK_TIME_LIMIT_SECONDS="25",
        VENDOR_HTTP_TIMEOUT_SECONDS="15",
    )
    try:
        stack.start_receiver()
        worker_a = stack.start_worker("worker-a", concurrency=1)
        vendor.then(Script(status=503, headers={"Retry-After": "15"}, body={"message": "x"}))
        retried = stack.sandbox_notification()
        retried_id = retried["provisionRequest"]["id"]
        assert stack.post_webhook(retried).status_code == 202
        wait_until(lambda: (r := stack.record(retried_id)) is not None and r.retries == 1, 20)
        member = f"pax8:{retried_id}"

        def holder_of_retry() -> str | None:
            # The retry's message, not the first one: that one is held (unacknowledged)
            # by the same worker until its task has returned, and a test that took it for
            # the retry posted the next order before the retry was even published; the
            # worker, its one slot taken by that order, then never took the retry, which
            # waited in the queue for worker b (nothing to hand back: no "handed back").
            client = stack.redis()
            for tag, value in client.hgetall("ff:broker:holders").items():
                worker, _, held = value.partition(" ")
                entry = client.hget(BROKER_UNACKED, tag)
                if held == member and entry and json.loads(entry)[0]["headers"]["retries"]:
                    return worker
            return None

        holder_a = wait_until(holder_of_retry, 20)
        vendor.then(Script(work=10.0))
        running = stack.sandbox_notification()
        running_id = running["provisionRequest"]["id"]
        assert stack.post_webhook(running).status_code == 202
        wait_until(lambda: vendor.arrived(running_id), 20)
        stack.start_worker("worker-b", concurrency=1)
        worker_a.signal(signal.SIGTERM)
        stopping = time.time()
        holder_b = wait_until(lambda: (h := holder_of_retry()) and h != holder_a and h, 10, 0.05)
        taken = time.time() - stopping
        assert worker_a.alive()  # still finishing its running order
        assert worker_a.popen.wait(30) == 0
        exited = time.time() - stopping
        for request_id in (running_id, retried_id):
            stack.wait_state(request_id, "reported", timeout=30)
        ids = [running_id, retried_id]
        count_and_check(
            stack,
            "03b SIGTERM hands back a held countdown retry",
            ids,
            f"the retry taken by the next worker {taken:.1f}s after SIGTERM; the stopping "
            f"worker exited after {exited:.1f}s",
            provisioned={i: len(vendor.provisionings(i)) for i in ids},
        )
        assert "handed back" in worker_a.log(100_000)
        assert holder_b.startswith("worker-") and taken < exited
        retry = stack.record(retried_id)
        running_record = stack.record(running_id)
        assert retry is not None and running_record is not None
        claims = [h["note"] for h in stack.ledger.history(retried_id) if h["event"] == "claimed"]
        assert len(claims) == 2  # claimed on a (the 503), then on b
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
        # queued (the next worker takes it), held unacknowledged (back once worker-a's
        # heartbeat is gone), or popped by BRPOP but not yet recorded as unacknowledged
        # (gone from Redis: the next worker's heartbeat finds it nowhere and queues it
        # again).
        first.kill()
        killed = time.time()
        second = stack.start_worker("worker-b", concurrency=1)
        stack.start_beat()
        stack.wait_state(request_id, "reported", timeout=LOST_AFTER + 60)
        after = time.time() - killed
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(vendor.provisionings(request_id))
        events = [entry["event"] for entry in stack.ledger.history(request_id)]
        path = (
            "queued again (message lost)"
            if "requeued" in events
            else "swept back (worker gone)"
            if "went back to its queue" in second.log(100_000)
            else "the queue"
        )
        tally(
            "04 worker killed holding a countdown retry",
            1,
            len(results),
            provisioned,
            provisioned - 1,
            f"vendor calls={len(vendor.calls_for(request_id))}, back by {path}, reported "
            f"{after:.0f}s after the kill",
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
    # safety net is shown every run, not only when fault 04's kill lands there. Default
    # settings and no beat: the worker's own heartbeat finds the order in flight longer
    # than WORKER_LOST_AFTER_SECONDS with its message nowhere, and queues it again.
    stack = Stack(tmp_path, env=FAULT_ENV)
    try:
        stack.start_receiver()
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        stack.wait_state(request_id, "queued", timeout=20)
        popped = stack.redis().rpop("fulfillment.net_new")
        lost_at = time.time()
        assert popped is not None and request_id in popped
        assert not stack.redis().llen("fulfillment.net_new") and not stack.redis().hlen("unacked")
        stack.start_worker(concurrency=1)
        stack.wait_state(request_id, "reported", timeout=LOST_AFTER + 60)
        after = time.time() - lost_at
        events = [entry["event"] for entry in stack.ledger.history(request_id)]
        count_and_check(
            stack,
            "04b message popped, consumer died before recording it",
            [request_id],
            f"queued again by the heartbeat's look; reported {after:.0f}s after the loss",
        )
        assert events.count("requeued") == 1
        assert after < LOST_AFTER + 2 * HEARTBEAT + 30
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
