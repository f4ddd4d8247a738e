"""The per-backend cap on vendor calls in flight (``VENDOR_MAX_IN_FLIGHT``), with real
workers: the cap holds across the deployment, the queue absorbs the rest, and another
backend's orders pass the waiting ones.

Two HTTP backends behind two routes. ``slow`` answers after :data:`LATENCY` and is capped
at :data:`CAP` (its ``max_in_flight`` in the routes file); ``fast`` answers at once, with no
cap. Two workers consume every queue, a gevent one (20 slots) and a prefork one (4): 24
slots between them. A burst of slow orders, then
fast orders paced behind it: the slow vendor counts the calls it is handling at once, and
never sees more than the cap; every order is provisioned once and reported once; the fast
orders are reported while the slow backlog is still draining, each well before the drain
ends (an order waiting for a slot holds no worker slot: it is back in its queue). Both
exporters are scraped and checked with promtool: the workers count the waits, beat's
exporter shows the slots held. Then a worker is killed holding every slot: they free
themselves when the calls' deadline has passed, not before, and its orders are finished once
by a replacement.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from fulfillment.ledger.slots import VendorSlots
from tests.support.procs import free_port, wait_until
from tests.support.stack import Stack
from tests.support.two_backends import two_backends
from tests.support.vendor_stub import Script, VendorStub
from tests.test_metrics import promtool_check, samples

SLOW, FAST = str(uuid.uuid4()), str(uuid.uuid4())
CAP = 3
LATENCY = 0.4
SLOW_ORDERS = 24
FAST_ORDERS = 12
TOKEN = "cap-metrics-token"


@pytest.fixture(scope="module")
def slow() -> Iterator[VendorStub]:
    with VendorStub(default=Script(delay_after=LATENCY)) as stub:
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
        tmp_path_factory.mktemp("vendor-cap"),
        (SLOW, FAST),
        (slow.url, fast.url),
        timeouts=(10, 10),
        slow_keys=f"max_in_flight = {CAP}",
        env={"METRICS_TOKEN": TOKEN},
    ) as running:
        yield running


def scrape(port: int) -> str:
    response = httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return response.text


def test_the_cap_holds_across_workers_and_other_backends_pass_the_waiting_orders(
    stack: Stack, slow: VendorStub, fast: VendorStub
) -> None:
    ports = {"gevent": free_port(), "prefork": free_port(), "beat": free_port()}
    workers = [
        stack.start_worker(
            "worker-gevent", 20, WORKER_POOL="gevent", WORKER_METRICS_PORT=str(ports["gevent"])
        ),
        stack.start_worker(
            "worker-prefork", 4, WORKER_POOL="prefork", WORKER_METRICS_PORT=str(ports["prefork"])
        ),
    ]
    beat = stack.start_beat(BEAT_METRICS_PORT=str(ports["beat"]))
    try:
        slow_ids = []
        for _ in range(SLOW_ORDERS):
            body = stack.sandbox_notification(productId=SLOW)
            assert stack.post_webhook(body).status_code == 202
            slow_ids.append(str(body["provisionRequest"]["id"]))
        # While the slow backend is full, beat's exporter shows its slots held.
        beat.wait_port(ports["beat"])
        held = wait_until(
            lambda: (
                samples(text := scrape(ports["beat"])).get(
                    ("fulfillment_vendor_calls_in_flight", (("backend", "slow"),))
                )
                and text
            ),
            20,
            message="beat's exporter never showed the slow backend's slots held",
        )
        promtool_check(held)
        assert 1 <= samples(held)[("fulfillment_vendor_calls_in_flight", (("backend", "slow"),))]
        caps = samples(held)
        assert caps[("fulfillment_vendor_calls_in_flight_max", (("backend", "slow"),))] == CAP

        fast_ids = []
        for _ in range(FAST_ORDERS):
            body = stack.sandbox_notification(productId=FAST)
            assert stack.post_webhook(body).status_code == 202
            fast_ids.append(str(body["provisionRequest"]["id"]))
            time.sleep(0.1)

        fast_records = [stack.wait_state(i, "reported", timeout=60) for i in fast_ids]
        slow_records = [stack.wait_state(i, "reported", timeout=120) for i in slow_ids]
        waits = 0.0
        for name in ("gevent", "prefork"):
            text = scrape(ports[name])
            promtool_check(text)
            waits += samples(text).get(
                ("fulfillment_vendor_slot_waits_total", (("backend", "slow"),)), 0.0
            )
    finally:
        for worker in workers:
            worker.stop()
        beat.stop()

    drain = max(r.state_at for r in slow_records) - min(r.created_at for r in slow_records)
    fast_seconds = [r.state_at - r.created_at for r in fast_records]
    print(
        f"\nslow backend: {SLOW_ORDERS} orders drained in {drain:.2f} s, at most "
        f"{slow.max_in_flight} calls in flight (cap {CAP}), {waits:.0f} waits; fast orders: "
        f"p50 {statistics.median(fast_seconds) * 1000:.0f} ms, max "
        f"{max(fast_seconds) * 1000:.0f} ms"
    )
    assert slow.max_in_flight == CAP  # reached, never passed (24 worker slots were there)
    assert drain >= SLOW_ORDERS * LATENCY / CAP * 0.9
    assert waits >= 1  # orders did wait for a slot (each counted by the worker it met)
    # The fast orders went past the slow backlog: none waited for it to drain.
    assert max(fast_seconds) < drain / 2, (fast_seconds, drain)
    assert max(r.state_at for r in fast_records) < max(r.state_at for r in slow_records)
    for stub, ids in ((slow, slow_ids), (fast, fast_ids)):
        for request_id in ids:
            assert len(stub.provisionings(request_id)) == 1, request_id
            (result,) = stack.sandbox.results(request_id=request_id)
            assert result["status"] == "Success"
    assert not {p["requestId"] for p in fast.provisionings()} & set(slow_ids)
    assert fast.max_in_flight >= 1  # (uncapped: beat's exporter showed no gauge for it)
    assert ("fulfillment_vendor_calls_in_flight", (("backend", "fast"),)) not in samples(held)


def test_a_killed_workers_slots_free_themselves_at_the_call_deadline(
    stack: Stack, slow: VendorStub
) -> None:
    """A worker SIGKILLed with every slot of the backend taken: its slots stay taken until
    their leases (the calls' deadline, 10 s) end, never sooner, and then free themselves;
    its orders come back to another worker and each is provisioned and reported once."""
    slots = VendorSlots(stack.redis())
    slow.hold(lambda call: True)
    worker = stack.start_worker("worker-killed", 4)
    try:
        ids = []
        for _ in range(CAP + 1):
            body = stack.sandbox_notification(productId=SLOW)
            assert stack.post_webhook(body).status_code == 202
            ids.append(str(body["provisionRequest"]["id"]))
        wait_until(lambda: len(slow.held()) == CAP, 20, message="the calls never started")
        taken = time.time()
        assert slots.in_flight(["slow"]) == {"slow": CAP}
        worker.kill()  # SIGKILL to the group: no slot is given back
    finally:
        slow.hold(None)
        slow.release()  # the vendor finishes those calls; their answers find no one
    wait_until(
        lambda: slots.in_flight(["slow"]) == {"slow": 0}, 20, 0.1, message="slots never freed"
    )
    freed = time.time() - taken
    print(f"\nslots of the killed worker freed {freed:.1f} s after its calls were seen")
    assert freed >= 10 - 1.0  # the lease is the call's deadline, taken before the call
    replacement = stack.start_worker("worker-replacement", 4)
    try:
        for request_id in ids:
            stack.wait_state(request_id, "reported", timeout=120)
    finally:
        replacement.stop()
    for request_id in ids:
        assert len(slow.provisionings(request_id)) == 1, request_id
        (result,) = stack.sandbox.results(request_id=request_id)
        assert result["status"] == "Success"
