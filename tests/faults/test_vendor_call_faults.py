"""Faults 1b, 1c, 12d: a vendor call cut short, and the vendor's idempotency answers.

The vendor is the loopback stub (``tests.support.vendor_stub``) behind the real ``http``
adapter, playing the two ways real vendors store an idempotency key: only once a request
finishes (1b), or when it starts, answering ``409`` to a repeat while it works (1c). Each
test kills a pool child in the middle of the vendor's work; the redelivered order must not
call again before the first call's deadline, and then gets the first call's outcome. Fault
12d is a vendor answering ``422`` (key reused with another body): one ``Fail`` that says it
is a bug, and a Sentry event.

Each prints what the guarantee costs: how long after the kill the order was reported, and
how long after the first call the repeat was made (the deadline, less the time the first
call had run before the kill).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import FAULT_ENV, WorkerPool, results_by_request, tally
from tests.support.procs import wait_until
from tests.support.sentry_server import SentryServer
from tests.support.stack import Stack
from tests.support.vendor_stub import Keys, Script, VendorStub

TOKEN = "vendor-call-faults-token"

# Billiard notices a killed pool child and hands its message back about 5 s later; the
# vendor's work and the adapter's deadline must outlast that for the repeat to meet the
# first call still running. Limits to match (the deadline stays below the soft limit); the
# visibility timeout is the default.
SLOW_CALL_ENV = {
    **FAULT_ENV,
    "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
    "TASK_TIME_LIMIT_SECONDS": "25",
}


def later(pool: WorkerPool) -> float:
    """How much later than under prefork a killed order's message is back under ``pool``:
    every duration of 1b and 1c (the vendor's work, the deadline, the limits) grows by it,
    so the repeat still meets the first call running."""
    return pool.redelivery_seconds - WorkerPool("prefork").redelivery_seconds


def http_stack(
    tmp_path: Path, vendor: VendorStub, deadline: float, pool: WorkerPool, **env: str
) -> Stack:
    extra = later(pool)
    return Stack(
        tmp_path,
        env={
            **SLOW_CALL_ENV,
            "TASK_SOFT_TIME_LIMIT_SECONDS": f"{20 + extra:g}",
            "TASK_TIME_LIMIT_SECONDS": f"{25 + extra:g}",
            **pool.env,
            "VENDOR_ADAPTER": "http",
            "VENDOR_HTTP_URL": vendor.url,
            "VENDOR_HTTP_TOKEN": TOKEN,
            "VENDOR_HTTP_TIMEOUT_SECONDS": f"{deadline:g}",
            **env,
        },
    )


def kill_during_the_call(
    stack: Stack, vendor: VendorStub, pool: WorkerPool
) -> tuple[str, float, float]:
    """Post one order and SIGKILL the process running it (the pool child; under gevent the
    worker, and another takes over) while the vendor works on it.

    Returns (request id, when the first call reached the vendor, when the child was killed).
    """
    worker = stack.start_worker(concurrency=1)
    body = stack.sandbox_notification()
    request_id = str(body["provisionRequest"]["id"])
    assert stack.post_webhook(body).status_code == 202
    (first,) = wait_until(lambda: vendor.arrived(request_id), 20)
    killed = time.time()
    pool.kill_running(stack, worker)
    if pool.green:
        # Started only now: had it run before the order came, it could have taken it, and
        # the kill would have missed the call (it then ran to the adapter's deadline).
        stack.start_worker("worker-b", concurrency=1)
    return request_id, first, killed


def price(stack: Stack, vendor: VendorStub, request_id: str, first: float, killed: float) -> str:
    """The delay the guarantee costs this order, as measured.

    The redelivered task's first claim found the earlier call possibly running (the
    ``wait`` entry in the history); without the wait it would have called right then.
    """
    arrivals = vendor.arrived(request_id)
    waited = [h["at"] for h in stack.ledger.history(request_id) if h["event"] == "wait"]
    if not waited or len(arrivals) < 2:
        return f"no wait (calls at {[round(at - first, 1) for at in arrivals]}s)"
    return (
        f"killed {killed - first:.1f}s into the call, redelivered {waited[0] - killed:.1f}s "
        f"after the kill, waited {arrivals[1] - waited[0]:.1f}s for the first call's "
        f"deadline; reported {time.time() - killed:.1f}s after the kill"
    )


@pytest.fixture
def on_completion(pool: WorkerPool) -> Iterator[VendorStub]:
    # Stores the key's answer only when its 8 s of work finish: a repeat that arrives
    # sooner (the redelivery comes about 5 s after the kill) does the work again.
    work = 8.0 + later(pool)
    with VendorStub(token=TOKEN, keys=Keys.ON_COMPLETION, work=work) as stub:
        yield stub


def test_fault_01b_pool_child_killed_mid_call_vendor_stores_keys_on_completion(
    tmp_path: Path, on_completion: VendorStub, pool: WorkerPool
) -> None:
    vendor = on_completion
    deadline = 12 + later(pool)
    stack = http_stack(tmp_path, vendor, deadline=deadline, pool=pool)
    try:
        stack.start_receiver()
        request_id, first, killed = kill_during_the_call(stack, vendor, pool)
        assert not vendor.provisionings(request_id)  # killed in the middle of the work
        stack.wait_state(request_id, "reported", timeout=60 + later(pool))
        measured = price(stack, vendor, request_id, first, killed)
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(vendor.provisionings(request_id))
        arrivals = vendor.arrived(request_id)
        tally(
            f"01b SIGKILL mid-call; vendor stores keys on completion ({pool.name})",
            1,
            len(results),
            provisioned,
            max(0, provisioned - 1) + max(0, len(results) - 1),
            measured,
        )
        assert [r["status"] for r in results] == ["Success"]
        assert provisioned == 1
        # The repeat came after the first call's deadline (12 s from its claim), so after
        # the vendor had finished (8 s) and stored the key; it got the first answer.
        assert len(arrivals) == 2 and arrivals[1] - first > deadline - 0.5
        (done,) = vendor.provisionings(request_id)
        sub = results[0]["externalProvisionerSubscriptionId"]
        assert sub == done["answer"]["externalProvisionerSubscriptionId"]
        assert "waited" in measured  # the redelivery met the first call's deadline
    finally:
        stack.stop()


@pytest.fixture
def at_start(pool: WorkerPool) -> Iterator[VendorStub]:
    # Takes the key when work starts and answers 409 (Retry-After: 1) while its 11 s of
    # work run: slower than the adapter's 8 s deadline, so the repeat meets it working.
    work = 11.0 + later(pool)
    with VendorStub(token=TOKEN, keys=Keys.AT_START, work=work, retry_after="1") as stub:
        yield stub


def test_fault_01c_pool_child_killed_mid_call_vendor_answers_409_while_working(
    tmp_path: Path, at_start: VendorStub, pool: WorkerPool
) -> None:
    vendor = at_start
    stack = http_stack(tmp_path, vendor, deadline=8 + later(pool), pool=pool)
    try:
        stack.start_receiver()
        request_id, first, killed = kill_during_the_call(stack, vendor, pool)
        stack.wait_state(request_id, "reported", timeout=60 + later(pool))
        measured = price(stack, vendor, request_id, first, killed)
        results = results_by_request(stack, [request_id])[request_id]
        provisioned = len(vendor.provisionings(request_id))
        statuses = [call.status for call in vendor.calls_for(request_id)]
        record = stack.record(request_id)
        assert record is not None
        tally(
            f"01c SIGKILL mid-call; vendor answers 409 while working ({pool.name})",
            1,
            len(results),
            provisioned,
            max(0, provisioned - 1) + max(0, len(results) - 1),
            f"vendor answers {statuses}; {measured}",
        )
        assert [r["status"] for r in results] == ["Success"]  # no Fail for a 409
        assert provisioned == 1
        assert 409 in statuses and statuses[-1] == 200
        assert statuses.count(200) == 2  # the first call's own, and the replay to the repeat
        assert record.retries == statuses.count(409)  # each 409 was one bounded retry
        assert "waited" in measured  # the redelivery met the first call's deadline
    finally:
        stack.stop()


@pytest.fixture
def vendor() -> Iterator[VendorStub]:
    with VendorStub(token=TOKEN) as stub:
        yield stub


def test_fault_12d_vendor_answers_422_one_fail_that_says_bug_and_a_sentry_event(
    tmp_path: Path, vendor: VendorStub
) -> None:
    vendor.then(
        Script(status=422, body={"message": "Idempotency-Key reused with a different body."})
    )
    with SentryServer() as sentry:
        stack = http_stack(
            tmp_path, vendor, deadline=5, pool=WorkerPool("prefork"), SENTRY_DSN=sentry.dsn
        )
        try:
            stack.start_receiver()
            stack.start_worker(concurrency=1)
            body = stack.sandbox_notification()
            request_id = str(body["provisionRequest"]["id"])
            assert stack.post_webhook(body).status_code == 202
            stack.wait_state(request_id, "reported", timeout=30)

            def alert() -> list[dict]:
                return [
                    e
                    for e in sentry.events()
                    if (e.get("tags") or {}).get("provision_request_id") == request_id
                ]

            (event,) = wait_until(alert, 20)
            results = results_by_request(stack, [request_id])[request_id]
            tally(
                "12d vendor 422 (key reused with another body)",
                1,
                len(results),
                0,
                max(0, len(results) - 1),
                "one Fail saying it is a bug, one Sentry event",
            )
            ((status, message),) = [(r["status"], r["errorMessage"]) for r in results]
            assert status == "Fail"
            assert "bug" in message and request_id in message and "HTTP 422" in message
            assert message.endswith("Idempotency-Key reused with a different body.")
            (exception,) = event["exception"]["values"]
            assert exception["type"] == "VendorContractError"
            assert len(vendor.calls_for(request_id)) == 1  # a refusal is not retried
            # One event about the order, and no credential in anything Sentry received.
            assert [e for e in sentry.events() if request_id in json.dumps(e)] == [event]
            assert TOKEN.encode() not in b"".join(sentry.envelopes)
        finally:
            stack.stop()
