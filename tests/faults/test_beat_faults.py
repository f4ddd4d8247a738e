"""Fault 14: two beats, a reconciliation that outlasts its interval, a lock holder killed."""

from __future__ import annotations

import time
from pathlib import Path

from fulfillment.workflow.reconcile import last_run
from tests.faults.conftest import FAULT_ENV, count_and_check
from tests.support.procs import wait_until
from tests.support.stack import Stack, unique_domain

LOCK = "ff:lock:reconcile"


def test_fault_14_overlong_runs_two_beats_and_a_killed_lock_holder(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path,
        env={**FAULT_ENV, "RECONCILE_INTERVAL_SECONDS": "2", "RECONCILE_LOCK_SECONDS": "12"},
    )
    try:
        stack.start_receiver()
        worker = stack.start_worker("worker-a", concurrency=2)
        # Every listing takes 5 s: each run outlasts the 2 s interval.
        stack.sandbox.add_fault(
            path="/v2/provision-requests/unfulfilled", action="delay", seconds=2.5
        )
        stack.start_beat("beat-a")
        stack.start_beat("beat-b")
        wait_until(lambda: last_run(stack.ledger)[0] >= 1, 40)
        first, _ = last_run(stack.ledger)
        window = 16.0
        time.sleep(window)  # a rate is observed over a fixed window
        runs = last_run(stack.ledger)[0] - first
        # Two beats send 16 tasks in the window; runs cannot overlap, and each lasts 5 s.
        assert 1 <= runs <= window / 5 + 1, runs

        # Kill the worker while a run holds the lock: nobody runs until the lock expires.
        wait_until(lambda: stack.redis().exists(LOCK), 20, 0.05)
        worker.kill()
        killed_at = time.monotonic()
        runs_at_kill = last_run(stack.ledger)[0]
        held_for = stack.redis().pttl(LOCK) / 1000
        assert held_for > 0  # the dead holder's lock expires on its own
        stack.sandbox.clear_faults()
        stack.start_worker("worker-b", concurrency=2)
        wait_until(lambda: last_run(stack.ledger)[0] > runs_at_kill, 40)
        recovered_after = time.monotonic() - killed_at
        assert recovered_after >= held_for - 0.5  # no run while the dead holder's lock lived

        # Reconciliation is back: a request whose webhook is lost gets fulfilled.
        stack.sandbox.add_fault(path="webhook", action="drop", times=1)
        lost = stack.sandbox.order(
            wait=True, order={"provisionRequest": {"companyDomain": unique_domain()}}
        )
        request_id = lost["provisionRequest"]["id"]
        stack.wait_state(request_id, "reported", timeout=40)
        count_and_check(
            stack,
            "14 overlong runs, 2 beats, lock holder killed",
            [request_id],
            f"runs in {window:.0f}s window={runs}, recovered {recovered_after:.0f}s after kill",
        )
    finally:
        stack.stop()
