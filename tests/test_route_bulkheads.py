"""Bulkheads: a backend that hangs holds up its own worker, never another backend's orders.

Two HTTP backends (vendor stubs) behind two routes, each route's orders on a queue of its
own. Backend A stops answering (every call held past the adapter's 3 s deadline); B's
orders are measured three times, from the moment the receiver recorded each to the moment
its result was reported (both times the ledger's): with A healthy, with A hung and a worker
per route (``WORKER_ROUTES=slow`` beside ``WORKER_EXCLUDE_ROUTES=slow``), and, for
comparison, with A hung and one worker for all. The figures are printed. B's p99 with its
own worker must stay below A's call deadline, which any order queued behind one of A's calls
waits at least: none of B's did (with one shared worker, B's p99 passes it: A's calls fill
every slot). The ratio to the healthy run is printed, not asserted: on a loaded 2-core
machine the healthy p99 itself moves by that much. A's orders wait, and once A answers
again each is provisioned once and reported once.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import Proc, wait_until
from tests.support.stack import Stack
from tests.support.two_backends import two_backends
from tests.support.vendor_stub import VendorStub

SLOW, FAST = str(uuid.uuid4()), str(uuid.uuid4())
ORDERS = 40
"""B's orders per measurement."""
PACE = 0.1
"""Seconds between two of B's webhooks (10 a second: a busy vendor, not a flood)."""
HUNG = 6
"""A's orders while it hangs: three times its worker's two slots."""
SHARED = 10
"""B's orders measured behind one shared worker (each waits seconds: fewer suffice)."""
DEADLINE = 3
"""A's call deadline (its adapter's timeout), seconds."""


@pytest.fixture(scope="module")
def slow() -> Iterator[VendorStub]:
    with VendorStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def fast() -> Iterator[VendorStub]:
    with VendorStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, slow: VendorStub, fast: VendorStub
) -> Iterator[Stack]:
    with two_backends(
        tmp_path_factory.mktemp("bulkheads"),
        (SLOW, FAST),
        (slow.url, fast.url),
        timeouts=(DEADLINE, 5),
        # A's retries must outlast the hang: the budget is not what is measured.
        env={"PROVISION_MAX_RETRIES": "30"},
    ) as running:
        yield running


def post_paced(stack: Stack, bodies: list[dict[str, Any]]) -> list[str]:
    """Post each webhook, one every :data:`PACE` seconds; their request ids."""
    ids = []
    for body in bodies:
        started = time.monotonic()
        assert stack.post_webhook(body).status_code == 202
        ids.append(str(body["provisionRequest"]["id"]))
        time.sleep(max(0.0, PACE - (time.monotonic() - started)))
    return ids


def latencies(stack: Stack, ids: list[str], timeout: float = 90.0) -> list[float]:
    """Seconds from each order's record to its report, once every one is reported."""
    records = [stack.wait_state(request_id, "reported", timeout=timeout) for request_id in ids]
    return [record.state_at - record.created_at for record in records]


def figures(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def measure(stack: Stack, label: str, count: int = ORDERS) -> tuple[float, float]:
    bodies = [stack.sandbox_notification(productId=FAST) for _ in range(count)]
    p50, p99 = figures(latencies(stack, post_paced(stack, bodies)))
    print(f"\nB's latency, {label}: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({count} orders)")
    return p50, p99


def test_a_hung_backend_holds_up_only_its_own_worker(
    stack: Stack, slow: VendorStub, fast: VendorStub
) -> None:
    workers: list[Proc] = [
        stack.start_worker("worker-slow", WORKER_ROUTES="slow"),
        stack.start_worker("worker-main", WORKER_EXCLUDE_ROUTES="slow"),
    ]
    try:
        measure(stack, "warm-up (not counted)", SHARED)
        _, healthy = measure(stack, "A healthy, a worker per route")

        # A stops answering: every call is held past the adapter's deadline.
        slow.hold(lambda call: True)
        hung = post_paced(stack, [stack.sandbox_notification(productId=SLOW) for _ in range(HUNG)])
        wait_until(lambda: len(slow.held()) >= 2, 20, message="A's calls never started")
        _, bulkhead = measure(stack, "A hung, a worker per route")
        waiting = [stack.record(request_id) for request_id in hung]
        assert all(record is not None and record.state != "reported" for record in waiting)

        # The same with one worker for all: A's calls take every slot.
        for worker in workers:
            worker.stop()
        workers = [stack.start_worker("worker-shared")]
        _, shared = measure(stack, "A hung, one worker for all", SHARED)
        print(
            f"\nB's p99: {healthy:.0f} ms healthy, {bulkhead:.0f} ms with A hung behind a "
            f"bulkhead ({bulkhead / healthy:.2f}x), {shared:.0f} ms with A hung and one "
            f"worker for all ({shared / healthy:.2f}x)"
        )
        assert bulkhead < DEADLINE * 1000, (healthy, bulkhead)
        assert shared > DEADLINE * 1000, (healthy, shared)  # what the bulkhead prevents

        # A answers again: each of its orders finishes, provisioned once, reported once.
        slow.hold(None)
        slow.release()
        for request_id in hung:
            stack.wait_state(request_id, "reported", timeout=120)
    finally:
        slow.hold(None)
        slow.release()
        for worker in workers:
            worker.stop()
    for request_id in hung:
        assert len(slow.provisionings(request_id)) == 1, request_id
        (result,) = stack.sandbox.results(request_id=request_id)
        assert result["status"] == "Success"
        record = stack.record(request_id)
        assert record is not None and record.retries >= 1  # it did wait for A
    assert not {c.order["provisionRequest"]["id"] for c in fast.calls} & set(hung)
    done = fast.provisionings()
    assert len(done) == len({p["requestId"] for p in done}) == 2 * ORDERS + 2 * SHARED


def test_the_procfile_worker_line_serves_one_route_with_worker_routes(
    stack: Stack, tmp_path: Path
) -> None:
    """The worker line, given WORKER_ROUTES, consumes that route's queue and nothing else
    (the banner Celery prints lists what it consumes)."""
    worker = stack.start_worker("worker-banner", WORKER_ROUTES="fast")
    try:
        log = worker.log(tail=20_000)
        queues = log.split("[queues]", 1)[1].split("[tasks]", 1)[0]
        assert "fulfillment.route.fast" in queues
        for other in ("fulfillment.route.slow", "fulfillment.net_new", "fulfillment.report"):
            assert other not in queues, queues
    finally:
        worker.stop()
