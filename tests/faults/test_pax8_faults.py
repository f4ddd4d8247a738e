"""Faults 10, 11 and 13: Pax8 failing, throttling, timing out and refusing tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.faults.conftest import count_and_check
from tests.support.procs import wait_until
from tests.support.stack import Stack

RESULTS_POST = "POST /v2/provision-requests/{id}/results"
RESULTS_PATH = "/v2/provision-requests/*/results"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("pax8-faults"),
        env={
            "PAX8_TIMEOUT_SECONDS": "3",
            "REPORT_MAX_RETRIES": "3",
            "RECONCILE_INTERVAL_SECONDS": "2",
        },
    )
    try:
        running.start_receiver()
        running.start_worker(concurrency=2)
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def clean(stack: Stack) -> Iterator[None]:
    stack.sandbox.clear_faults()
    stack.sandbox.reset_calls()
    yield
    stack.sandbox.clear_faults()


def posts(stack: Stack) -> int:
    return int(stack.sandbox.calls()["by_operation"].get(RESULTS_POST, 0))


def tokens(stack: Stack) -> int:
    by_op = stack.sandbox.calls()["by_operation"]
    return sum(n for op, n in by_op.items() if "/v1/token" in op)


def order(stack: Stack) -> str:
    body = stack.sandbox_notification()
    assert stack.post_webhook(body).status_code == 202
    return str(body["provisionRequest"]["id"])


def test_fault_10a_results_answer_500_500_200(stack: Stack) -> None:
    stack.sandbox.add_fault(method="POST", path=RESULTS_PATH, action="error", status=500, times=2)
    request_id = order(stack)
    stack.wait_state(request_id, "reported", timeout=30)
    count_and_check(
        stack, "10a result POST 500, 500, 200", [request_id], f"result POSTs={posts(stack)}"
    )
    assert posts(stack) == 3


def test_fault_10b_429_retry_after_is_honoured(stack: Stack) -> None:
    stack.sandbox.add_fault(
        method="POST", path=RESULTS_PATH, action="error", status=429, retry_after=7, times=1
    )
    request_id = order(stack)
    wait_until(lambda: stack.sandbox.faults()[0]["fired"] == 1, 20, 0.02)
    refused_at = time.time()
    (result,) = stack.wait_results(1, timeout=30, request_id=request_id)
    stored_at = datetime.fromisoformat(result["createdDate"].replace("Z", "+00:00")).timestamp()
    waited = stored_at - refused_at
    count_and_check(
        stack, "10b result POST 429 Retry-After 7", [request_id], f"next try after {waited:.1f}s"
    )
    assert waited >= 7.0 - 0.05  # refused_at was observed after the refusal, never before


def test_fault_10c_pax8_down_past_the_budget_then_reconciled(stack: Stack) -> None:
    stack.sandbox.add_fault(method="POST", path=RESULTS_PATH, action="error", status=503)
    request_id = order(stack)
    stack.wait_state(request_id, "provisioned", timeout=20)
    # The try right after provisioning, the report task's first try, its 3 retries.
    wait_until(lambda: posts(stack) >= 5, 30)
    wait_until(lambda: "report-deferred" in stack.describe(), 20)
    assert stack.record(request_id).state == "provisioned"  # type: ignore[union-attr]
    stack.sandbox.clear_faults()
    beat = stack.start_beat(RECONCILE_INTERVAL_SECONDS="2")
    try:
        stack.wait_state(request_id, "reported", timeout=30)
    finally:
        beat.stop()
    count_and_check(
        stack,
        "10c Pax8 down past the budget",
        [request_id],
        f"result POSTs={posts(stack)}, reported by reconciliation",
    )
    assert posts(stack) == 6


def test_fault_11_timeout_after_pax8_stored_the_result(stack: Stack) -> None:
    stack.sandbox.add_fault(
        method="POST", path=RESULTS_PATH, action="delay_after", seconds=5, times=1
    )
    request_id = order(stack)
    stack.wait_state(request_id, "reported", timeout=40)
    lookups = stack.sandbox.calls()["by_operation"].get(
        "GET /v2/provision-requests/{id}/results", 0
    )
    count_and_check(
        stack,
        "11 result POST timed out after Pax8 stored it",
        [request_id],
        f"POSTs={posts(stack)} lookups={lookups}",
    )
    assert posts(stack) == 1 and lookups >= 1


def test_fault_13a_token_expires_mid_run(stack: Stack) -> None:
    first = order(stack)
    stack.wait_state(first, "reported", timeout=30)
    before = tokens(stack)
    assert stack.sandbox.expire_tokens() >= 1
    second = order(stack)
    stack.wait_state(second, "reported", timeout=30)
    count_and_check(
        stack, "13a token expired mid-run", [first, second], f"new tokens={tokens(stack) - before}"
    )
    assert tokens(stack) - before >= 1


def test_fault_13b_one_401_means_one_refresh(stack: Stack) -> None:
    stack.sandbox.add_fault(method="POST", path=RESULTS_PATH, action="error", status=401, times=1)
    before = tokens(stack)
    request_id = order(stack)
    stack.wait_state(request_id, "reported", timeout=30)
    count_and_check(
        stack,
        "13b forced 401: one refresh, retried",
        [request_id],
        f"POSTs={posts(stack)} tokens={tokens(stack) - before}",
    )
    assert posts(stack) == 2 and tokens(stack) - before == 1


def test_fault_13c_two_401s_are_permanent_without_a_loop(stack: Stack) -> None:
    stack.sandbox.add_fault(method="POST", path=RESULTS_PATH, action="error", status=401, times=2)
    request_id = order(stack)
    wait_until(lambda: "report-unauthorized" in stack.describe(), 30)
    record = stack.record(request_id)
    calls_then = posts(stack)
    wait_until(lambda: stack.sandbox.faults()[0]["remaining"] == 0, 5)
    assert record is not None and record.state == "provisioned"  # safe, not reported, not lost
    assert calls_then == 2  # one refresh, never a loop
    assert stack.sandbox.results(request_id=request_id) == []
    # Once the credentials work again, reconciliation reports it.
    beat = stack.start_beat(RECONCILE_INTERVAL_SECONDS="2")
    try:
        stack.wait_state(request_id, "reported", timeout=30)
    finally:
        beat.stop()
    count_and_check(
        stack, "13c second 401: permanent, no loop", [request_id], f"POSTs={posts(stack)}"
    )
