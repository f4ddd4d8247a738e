"""Fault 12: the vendor failing for a moment, refusing, and hanging, under each pool (under
gevent the soft limit that cuts the hung call is ``worker/pool.py``'s, not Celery's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.conftest import FAULT_ENV, WorkerPool, results_by_request, tally
from tests.support.stack import Stack
from tests.support.vendor_stub import Script, VendorStub


@pytest.fixture(scope="module")
def vendor() -> Iterator[VendorStub]:
    with VendorStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, vendor: VendorStub, pool: WorkerPool
) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("vendor-faults"),
        env={
            **FAULT_ENV,
            **pool.env,
            "VENDOR_ADAPTER": "http",
            "VENDOR_HTTP_URL": vendor.url,
            # Longer than the task's soft limit (8 s): a hanging vendor meets the limit first;
            # the retry then waits out the rest of this deadline (the call may still run).
            "VENDOR_HTTP_TIMEOUT_SECONDS": "9",
        },
    )
    try:
        running.start_receiver()
        running.start_worker(concurrency=1)
        yield running
    finally:
        running.stop()


def order(stack: Stack) -> str:
    body = stack.sandbox_notification()
    assert stack.post_webhook(body).status_code == 202
    return str(body["provisionRequest"]["id"])


def test_fault_12a_vendor_503_then_ok(stack: Stack, vendor: VendorStub) -> None:
    vendor.then(Script(status=503, body={"message": "busy"}), Script())
    request_id = order(stack)
    stack.wait_state(request_id, "reported", timeout=30)
    results = results_by_request(stack, [request_id])[request_id]
    subscriptions = len(vendor.provisionings(request_id))
    tally(
        "12a vendor 503 then success",
        1,
        len(results),
        subscriptions,
        subscriptions - 1,
        f"vendor calls={len(vendor.calls_for(request_id))}",
    )
    assert [r["status"] for r in results] == ["Success"] and subscriptions == 1


def test_fault_12b_vendor_400_is_one_fail_with_its_message(
    stack: Stack, vendor: VendorStub
) -> None:
    vendor.then(Script(status=400, body={"message": "Domain is reserved by the vendor."}))
    request_id = order(stack)
    stack.wait_state(request_id, "reported", timeout=30)
    results = results_by_request(stack, [request_id])[request_id]
    tally("12b vendor 400", 1, len(results), 0, 0, "one Fail with the vendor's message")
    assert [(r["status"], r["errorMessage"]) for r in results] == [
        ("Fail", "Domain is reserved by the vendor.")
    ]
    assert len(vendor.calls_for(request_id)) == 1  # a refusal is not retried


def test_fault_12c_vendor_hangs_time_limit_fires_and_retries(
    stack: Stack, vendor: VendorStub
) -> None:
    vendor.then(Script(delay_before=30))  # the first call never answers in time
    hung = order(stack)
    stack.wait_state(hung, "reported", timeout=60)
    record = stack.record(hung)
    assert record is not None and record.retries == 1
    assert "SoftTimeLimitExceeded" in stack.describe()
    # No stuck worker: the next order goes straight through.
    after = order(stack)
    stack.wait_state(after, "reported", timeout=30)
    results = results_by_request(stack, [hung, after])
    subscriptions = {r: len(vendor.provisionings(r)) for r in (hung, after)}
    tally(
        "12c vendor hangs: time limit, retry",
        2,
        sum(len(v) for v in results.values()),
        sum(subscriptions.values()),
        0,
        f"retries={record.retries}",
    )
    assert all(len(v) == 1 for v in results.values())
    assert set(subscriptions.values()) == {1}
