"""Fault 10d: Pax8 answers 429 to every result POST for a while, and a gevent worker has
many orders to report at once.

The worker's Pax8 client is one per process, shared by its greenlets: after the first 429
every greenlet holds off until its Retry-After has passed, then one POST goes first and
the others wait for its answer (``pax8/client.py``). So during :data:`WINDOW` seconds of
429s Pax8 receives the POSTs already on their way when the first 429 came back (at most the
worker's concurrency) and about one per hold-off after that, not one from each order each
time its own retry comes round (which would be at least one per order: :data:`ORDERS`).
When Pax8 takes results again, every order is reported once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import count_and_check
from tests.faults.test_pax8_faults import RESULTS_PATH, posts
from tests.support.procs import wait_until
from tests.support.stack import Stack

ORDERS = 30
CONCURRENCY = 10
RETRY_AFTER = 2
WINDOW = 6.0
"""Seconds Pax8 answers 429 to every result POST, from its first 429."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("pax8-hold-off"),
        # The report budget is not what is measured: it must outlast the window.
        env={"REPORT_MAX_RETRIES": "30"},
    )
    try:
        running.start_receiver()
        running.start_worker(concurrency=CONCURRENCY, WORKER_POOL="gevent")
        yield running
    finally:
        running.stop()


def test_fault_10d_a_429_holds_off_every_greenlet_of_the_worker(stack: Stack) -> None:
    stack.sandbox.reset_calls()
    stack.sandbox.add_fault(
        method="POST", path=RESULTS_PATH, action="error", status=429, retry_after=RETRY_AFTER
    )
    ids = []
    for _ in range(ORDERS):
        body = stack.sandbox_notification()
        assert stack.post_webhook(body).status_code == 202
        ids.append(str(body["provisionRequest"]["id"]))
    wait_until(lambda: stack.sandbox.faults()[0]["fired"] >= 1, 30, 0.02)
    time.sleep(WINDOW)  # the window being measured: Pax8 keeps answering 429 through it
    refused = stack.sandbox.faults()[0]["fired"]
    during = posts(stack)
    stack.sandbox.clear_faults()
    for request_id in ids:
        stack.wait_state(request_id, "reported", timeout=60)
    count_and_check(
        stack,
        "10d result POSTs 429 for 6 s, 30 orders on a gevent worker",
        ids,
        f"{refused} POSTs refused during the window, {posts(stack)} in all",
    )
    print(f"\n{refused} result POSTs answered 429 in {WINDOW:.0f} s ({ORDERS} orders waiting)")
    assert refused == during  # every POST Pax8 received in the window was refused
    # The POSTs in flight when the first 429 came back, then about one per hold-off.
    assert refused <= CONCURRENCY + WINDOW / RETRY_AFTER + 2, refused
    assert posts(stack) == refused + ORDERS  # then one accepted POST per order
