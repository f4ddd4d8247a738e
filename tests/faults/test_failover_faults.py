"""Faults 17-19: Redis Sentinel failovers under a burst of webhooks, with real processes.

One master, one replica, three sentinels (:class:`~tests.support.sentinel.SentinelStack`),
and the Procfile's web, worker and beat lines; the vendor is the ``http`` adapter against
a stub that counts provisionings by idempotency key. A :class:`~tests.support.burst.Burst`
plays Pax8: it delivers 300 notifications at a steady rate and delivers a refused one
again until it is acknowledged. Each test ends by counting: every request whose webhook
got a 202 has exactly one result at the sandbox and was provisioned once.

* 17: the master SIGKILLed mid-burst while its replica lags 1.5 s behind,
  ``REDIS_WAIT_REPLICAS=1``: nothing acknowledged is lost, so reconciliation finds nothing
  to bring back; the killed master is restarted and rejoins as a replica (without one WAIT
  can never succeed again).
* 18: the same with ``REDIS_WAIT_REPLICAS=0``: what was acknowledged while the replica
  lagged is lost with the master; reconciliation brings back every order Pax8 still lists,
  and the test says how many needed it.
* 19: ``SENTINEL FAILOVER`` (a planned switch) mid-burst, ``REDIS_WAIT_REPLICAS=1``:
  nothing lost, and every refusal falls inside the switch window, which is measured.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.redis_server import RedisServer
from tests.faults.conftest import (
    FAULT_ENV,
    WorkerPool,
    bulk_notifications,
    results_by_request,
    tally,
)
from tests.support.burst import Burst
from tests.support.procs import Proc, wait_until
from tests.support.sentinel import SentinelStack
from tests.support.stack import Stack
from tests.support.vendor_stub import Script, VendorStub

PREFORK = WorkerPool("prefork")
BURST = 300
RATE = 25.0  # webhooks/s: the burst lasts 12 s, the fault lands in its middle
RECONCILE_EVERY = "4"
LAG = 1.5  # seconds of the master's stream its replica has not seen when the master dies
_SUMMARY = re.compile(r"reconciliation: (\{.*\})")


@pytest.fixture
def vendor() -> Iterator[VendorStub]:
    # 0.2 s per order: four pool processes fall a little behind the burst, so orders are
    # queued and in flight when the master dies, as in any real backlog.
    with VendorStub(default=Script(delay_after=0.2)) as stub:
        yield stub


def sentinel_stack(
    tmp_path: Path, vendor: VendorStub, wait_replicas: int, pool: WorkerPool = PREFORK
) -> SentinelStack:
    return SentinelStack(
        tmp_path,
        env={
            **FAULT_ENV,
            **pool.env,
            "VENDOR_ADAPTER": "http",
            "VENDOR_HTTP_URL": vendor.url,
            "VENDOR_HTTP_TIMEOUT_SECONDS": "5",
            "REDIS_WAIT_REPLICAS": str(wait_replicas),
            "REDIS_WAIT_TIMEOUT_MS": "500",
            "RECONCILE_INTERVAL_SECONDS": RECONCILE_EVERY,
        },
    )


def start_processes(stack: Stack) -> list[Proc]:
    """The receiver and two workers (beat starts once the burst is in: see below)."""
    return [
        stack.start_receiver(),
        stack.start_worker("worker-a", concurrency=2),
        stack.start_worker("worker-b", concurrency=2),
    ]


def reconciled(procs: list[Proc]) -> dict[str, int]:
    """What the reconciliation runs logged by ``procs`` did, summed."""
    totals = {"runs": 0, "enqueued": 0, "requeued": 0, "rereported": 0}
    for proc in procs:
        for match in _SUMMARY.finditer(proc.log(tail=50_000_000)):
            summary = json.loads(match.group(1))
            totals["runs"] += 1
            for key in ("enqueued", "requeued", "rereported"):
                totals[key] += int(summary.get(key, 0))
    return totals


def finish_and_count(
    stack: SentinelStack,
    vendor: VendorStub,
    burst: Burst,
    procs: list[Proc],
    fault: str,
    note: str,
    timeout: float = 150.0,
) -> tuple[list[str], dict[str, int]]:
    """Start beat, wait until every acknowledged order has its result, and count.

    Beat starts only now: it would otherwise enqueue, from Pax8's listing, the orders the
    burst had not delivered yet, and hide whether an acknowledged one was lost.
    """
    burst.join()
    accepted = burst.accepted_ids()
    assert len(accepted) == BURST, f"only {len(accepted)} of {BURST} acknowledged"
    beat = stack.start_beat()
    wait_until(
        lambda: all(len(v) >= 1 for v in results_by_request(stack, accepted).values()),
        timeout,
        0.5,
        message=lambda: f"results missing; ledger {stack.ledger.counts()}\n{stack.describe()}",
    )
    # A moment for a late duplicate to show itself, if there were one.
    time.sleep(2)
    results = results_by_request(stack, accepted)
    keys: dict[str, int] = {}
    for provisioning in vendor.provisionings():
        keys[provisioning["requestId"]] = keys.get(provisioning["requestId"], 0) + 1
    provisioned = {request_id: keys.get(request_id, 0) for request_id in accepted}
    calls = sum(len(vendor.calls_for(request_id)) for request_id in accepted)
    duplicates = sum(max(0, len(v) - 1) for v in results.values()) + sum(
        max(0, n - 1) for n in provisioned.values()
    )
    totals = reconciled([*procs, beat])
    tally(
        fault,
        len(accepted),
        sum(len(v) for v in results.values()),
        sum(provisioned.values()),
        duplicates,
        f"{note}; refused first {burst.refused_first()}, vendor calls {calls}, "
        f"reconciled {totals['enqueued']} unknown + {totals['requeued']} stranded",
    )
    assert all(len(v) == 1 for v in results.values()), "missing or extra results"
    assert set(provisioned.values()) == {1}, "an order was provisioned twice, or never"
    for proc in [*procs, beat]:
        assert proc.alive(), f"{proc.name} exited\n{proc.describe()}"
    return accepted, totals


def kill_master_while_orders_are_owed(stack: SentinelStack, vendor: VendorStub) -> RedisServer:
    """Kill the master after its replica has lagged ``LAG`` seconds, with every vendor answer
    held meanwhile: no order finishes while the replica lags, so each one acknowledged in
    that time is still owed a result when the master dies, however fast the workers were.
    The held answers come back once the master is dead (calls that ended mid-failover)."""
    vendor.hold(lambda call: True)
    try:
        return stack.kill_master(lagging=LAG)
    finally:
        vendor.hold(None)
        vendor.release()


def master_killed_mid_burst(
    tmp_path: Path, vendor: VendorStub, wait_replicas: int, fault: str, pool: WorkerPool = PREFORK
) -> dict[str, int]:
    """Faults 17 and 18: the master killed a third into the burst while its replica lags;
    the old master restarted (with its AOF: the sentinels make it a replica of the new
    one); everything counted. What reconciliation did, summed over its runs."""
    stack = sentinel_stack(tmp_path, vendor, wait_replicas=wait_replicas, pool=pool)
    try:
        procs = start_processes(stack)
        bodies = bulk_notifications(stack, BURST)
        burst = Burst(f"{stack.receiver_url}/webhooks/pax8", bodies, rate=RATE, threads=16).start()
        burst.wait_acknowledged(BURST // 3)
        killed = kill_master_while_orders_are_owed(stack, vendor)
        killed_at = time.monotonic()
        promoted = stack.wait_failover(killed.address)
        promoted_after = time.monotonic() - killed_at
        killed.start()
        back_after = stack.wait_replicated() - killed_at
        _, totals = finish_and_count(
            stack,
            vendor,
            burst,
            procs,
            fault,
            f"promoted {promoted.port} after {promoted_after:.1f}s, replica back "
            f"{back_after:.1f}s after the kill",
        )
        print(
            f"[{fault[:2]}] orders reconciliation brought back: {totals['enqueued']} unknown "
            f"to the new master, {totals['requeued']} stranded in flight ({totals['runs']} runs)"
        )
        return totals
    finally:
        stack.stop()


def test_fault_17_master_killed_mid_burst_with_wait_1_loses_no_acknowledged_order(
    tmp_path: Path, vendor: VendorStub, pool: WorkerPool
) -> None:
    totals = master_killed_mid_burst(
        tmp_path, vendor, 1, f"17 master SIGKILLed mid-burst, WAIT 1 replica ({pool.name})", pool
    )
    # Every 202 was on the replica before it was sent: nothing for reconciliation.
    assert totals["enqueued"] == 0, totals


def test_fault_18_master_killed_mid_burst_with_wait_0_reconciliation_brings_orders_back(
    tmp_path: Path, vendor: VendorStub
) -> None:
    totals = master_killed_mid_burst(tmp_path, vendor, 0, "18 master SIGKILLed mid-burst, WAIT 0")
    # The replica lagged: orders acknowledged in that time were lost with the master,
    # and only reconciliation (from Pax8's unfulfilled list) could bring them back.
    assert totals["enqueued"] >= 1, totals


def test_fault_19_planned_failover_mid_burst_refuses_only_inside_the_switch(
    tmp_path: Path, vendor: VendorStub
) -> None:
    stack = sentinel_stack(tmp_path, vendor, wait_replicas=1)
    try:
        procs = start_processes(stack)
        bodies = bulk_notifications(stack, BURST)
        old = stack.master()
        burst = Burst(f"{stack.receiver_url}/webhooks/pax8", bodies, rate=RATE, threads=16).start()
        burst.wait_acknowledged(BURST // 3)
        asked = stack.planned_failover()
        promoted = stack.wait_failover(old.address)
        replicated = stack.wait_replicated()
        refusals = burst.refusals()
        window = (refusals[-1][0] - refusals[0][0]) if refusals else 0.0
        note = (
            f"{len(refusals)} refusals (statuses {sorted({s for _, s in refusals})}) over "
            f"{window:.1f}s; {promoted.port} master, replica back "
            f"{replicated - asked:.1f}s after SENTINEL FAILOVER"
        )
        print(f"[19] switch window: {note}")
        finish_and_count(stack, vendor, burst, procs, "19 SENTINEL FAILOVER mid-burst", note)
        # Refused only while the switch lasted: from the command until the new master had a
        # replica that confirms (the window), plus the time one refused try takes.
        for at, status in refusals:
            assert asked - 0.5 <= at <= replicated + 3.0, (at - asked, status)
            assert status in (0, 503), status
    finally:
        stack.stop()
