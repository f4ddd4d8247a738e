"""Faults 20-22: the receiver, two worker hosts and Redis on separate hosts.

Each host is a network namespace the test builds (:class:`~tests.support.netns.Network`:
veth pairs on a bridge, addresses it assigns, no route out); the sandbox and the vendor
stub run beside the test on the "outside" host. Every process comes from its Procfile line
with the other hosts' addresses in its settings, so nothing can assume localhost.

* 20: every process of one worker host SIGKILLed at once, mid-burst: the other host
  finishes (the dead host's messages come back once its heartbeat is gone); nothing lost,
  nothing twice.
* 21: a worker host cut off (its switch port down: packets vanish) while it holds two
  orders, healed once the other host took them (its heartbeat gone, their messages went
  back to the queue). The redelivered orders are claimed and done by the other host; the
  cut-off worker's own last write (the retry it recorded when its vendor call timed out,
  still in its kernel's send queue) reaches Redis only after the heal, while the other host
  holds the claim, and changes nothing: each order is provisioned once and reported once,
  by the other host.

Both run with the default visibility timeout (an hour) and liveness settings.
* 22: celery beat moved from one host to the other (killed there, started here, both up
  for a while): one reconciliation per interval throughout, and reconciliation still
  fulfils an order whose webhook was lost.

Skipped, with the reason printed, where namespaces cannot be made (not root).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fulfillment.ledger.scripts import lua_source
from fulfillment.workflow.reconcile import last_run
from tests.faults.conftest import (
    FAULT_ENV,
    HEARTBEAT,
    LOST_AFTER,
    WorkerPool,
    bulk_notifications,
    results_by_request,
    tally,
    wait_all_reported,
)
from tests.support.burst import Burst
from tests.support.hosts import HostsStack
from tests.support.netns import OUTSIDE, Network, unavailable
from tests.support.procs import wait_until
from tests.support.redis_monitor import Monitor
from tests.support.stack import unique_domain
from tests.support.vendor_stub import Call, Script, VendorStub

HOSTS = ("redis", "web", "a", "b")
PREFORK = WorkerPool("prefork")


@pytest.fixture
def network() -> Iterator[Network]:
    reason = unavailable()
    if reason is not None:
        print(f"[hosts] skipped: {reason}")
        pytest.skip(reason)
    with Network(HOSTS) as built:
        yield built


def hosts_stack(
    tmp_path: Path,
    network: Network,
    vendor: VendorStub,
    pool: WorkerPool = PREFORK,
    **env: str,
) -> HostsStack:
    return HostsStack(
        tmp_path,
        network,
        env={
            **FAULT_ENV,
            **pool.env,
            "VENDOR_ADAPTER": "http",
            "VENDOR_HTTP_URL": vendor.url,
            "VENDOR_HTTP_TIMEOUT_SECONDS": "6",
            **env,
        },
    )


def provisioned_by_key(vendor: VendorStub, ids: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(ids, 0)
    for provisioning in vendor.provisionings():
        if provisioning["requestId"] in counts:
            counts[provisioning["requestId"]] += 1
    return counts


def count_and_check(
    stack: HostsStack, vendor: VendorStub, fault: str, ids: list[str], note: str
) -> None:
    results = results_by_request(stack, ids)
    provisioned = provisioned_by_key(vendor, ids)
    duplicates = sum(max(0, len(v) - 1) for v in results.values()) + sum(
        max(0, n - 1) for n in provisioned.values()
    )
    calls = sum(len(vendor.calls_for(i)) for i in ids)
    tally(
        fault,
        len(ids),
        sum(len(v) for v in results.values()),
        sum(provisioned.values()),
        duplicates,
        f"{note}; vendor calls {calls}",
    )
    assert all(len(v) == 1 for v in results.values()), "missing or extra results"
    assert set(provisioned.values()) == {1}, "an order was provisioned twice, or never"


def test_fault_20_a_worker_host_loses_every_process_mid_burst(
    tmp_path: Path, network: Network, pool: WorkerPool
) -> None:
    outside = network.hosts[OUTSIDE].address
    with VendorStub(default=Script(delay_after=0.2), host=outside) as vendor:
        stack = hosts_stack(tmp_path, network, vendor, pool, RECONCILE_INTERVAL_SECONDS="5")
        try:
            stack.start_receiver()
            worker_a = stack.start_worker_on("a", "worker-a", concurrency=2)
            worker_b = stack.start_worker_on("b", "worker-b", concurrency=2)
            bodies = bulk_notifications(stack, 200)
            ids = [body["provisionRequest"]["id"] for body in bodies]
            burst = Burst(f"{stack.receiver_url}/webhooks/pax8", bodies, rate=40, threads=8)
            burst.start()
            a_address = network.hosts["a"].address
            wait_until(lambda: sum(c.peer == a_address for c in vendor.calls) >= 20, 60)
            killed = network.kill_host("a")
            killed_at = time.time()
            burst.join()
            assert burst.acknowledged() == len(ids), burst.acknowledged()
            # Beat runs on the surviving host, as in production. A message the kill caught
            # between BRPOP and its unacked record (fault 4b) is queued again by host b's
            # heartbeat; the ones host a held go back once its heartbeat is gone.
            stack.start_beat_on("b", "beat-b")
            wait_all_reported(stack, ids, timeout=150)
            finished = time.time()
            assert not worker_a.alive() and worker_b.alive()
            b_address = network.hosts["b"].address
            redone = [
                i for i in ids if {c.peer for c in vendor.calls_for(i)} == {a_address, b_address}
            ]
            count_and_check(
                stack,
                vendor,
                f"20 worker host: all processes SIGKILLed ({pool.name})",
                ids,
                f"{len(killed)} processes killed on host a, "
                f"{sum(c.peer == a_address for c in vendor.calls)} vendor calls from it, "
                f"{len(redone)} in its hands redone by host b; all reported "
                f"{finished - killed_at:.0f}s after the kill",
            )
        finally:
            stack.stop()


def test_fault_21_a_partitioned_worker_host_cannot_write_over_the_redelivery(
    tmp_path: Path, network: Network, pool: WorkerPool
) -> None:
    outside = network.hosts[OUTSIDE].address
    a_address, b_address = network.hosts["a"].address, network.hosts["b"].address
    release_sha = hashlib.sha1(lua_source("release").encode()).hexdigest()
    with VendorStub(host=outside) as vendor:
        stack = hosts_stack(tmp_path, network, vendor, pool)
        monitor = Monitor(stack.redis_server.url, a_address)
        try:
            # Every ledger script cached, as on any server that saw a retry before: a late
            # write then runs, rather than failing with NOSCRIPT on its closed connection.
            for script in ("release", "finish", "dead"):
                stack.redis().script_load(lua_source(script))
            stack.start_receiver()
            worker_a = stack.start_worker_on("a", "worker-a", concurrency=2)
            # Host b's calls may wait long (a deadline of 90 s): it holds its claims, once it
            # has taken a's orders, until the test lets its vendor answer.
            stack.start_worker_on(
                "b",
                "worker-b",
                concurrency=2,
                VENDOR_HTTP_TIMEOUT_SECONDS="90",
                TASK_SOFT_TIME_LIMIT_SECONDS="100",
                TASK_TIME_LIMIT_SECONDS="110",
            )
            vendor.hold(lambda call: call.peer == a_address)  # A's answers are slow to come
            bodies = bulk_notifications(stack, 40)
            ids = [body["provisionRequest"]["id"] for body in bodies]
            burst = Burst(f"{stack.receiver_url}/webhooks/pax8", bodies, rate=20).start()
            wait_until(lambda: len(vendor.held()) == 2, 60, message="host a holds no orders")
            network.partition("a")
            cut_at = time.time()
            held = {call.order["provisionRequest"]["id"]: call.key for call in vendor.held()}
            burst.join()
            assert burst.acknowledged() == len(ids)
            others = [i for i in ids if i not in held]
            wait_all_reported(stack, others, timeout=60)
            # Once host a's heartbeat is gone, host b puts the two messages back and takes
            # them again (same task ids) and claims them; its vendor calls wait, so it
            # holds the claims while a comes back.
            keys = set(held.values())

            def b_holds(call: Call) -> bool:
                return call.peer == b_address and call.key in keys

            vendor.hold(lambda call: call.peer == a_address or b_holds(call))
            wait_until(lambda: len([c for c in vendor.held() if b_holds(c)]) == 2, 60)
            taken_over_at = time.time()
            # Not declared gone before its heartbeat was LOST_AFTER old: its last one came
            # at most a heartbeat interval before the cut.
            assert taken_over_at - cut_at > LOST_AFTER - HEARTBEAT
            network.heal("a")
            vendor.release(lambda call: call.peer == a_address)  # too late: a's task is gone
            # a's own last writes (its vendor calls timed out: retry recorded) were in its
            # kernel's send queue; TCP delivers them once the link is back (its next
            # retransmission, which backs off: up to half a minute after the heal).
            wait_until(
                lambda: len(monitor.after(taken_over_at, release_sha)) >= 2,
                75,
                message=lambda: f"no late write from host a: {monitor.seen[-5:]}",
            )
            late = monitor.after(taken_over_at, release_sha)
            for request_id in held:
                record = stack.record(request_id)
                assert record is not None and record.state == "provisioning", record
                assert record.retries == 0  # the late retry was refused: b's claim stands
            vendor.release()
            wait_all_reported(stack, ids, timeout=60)
            for request_id in held:
                events = [h["event"] for h in stack.ledger.history(request_id)]
                assert events.count("vendor") == 1 and "retry" not in events, events
            assert worker_a.alive(), "host a's worker exited over the partition"
            count_and_check(
                stack,
                vendor,
                f"21 worker host partitioned until its orders are taken over ({pool.name})",
                ids,
                f"{len(held)} orders taken over after {taken_over_at - cut_at:.0f}s; "
                f"{len(late)} late writes from host a refused",
            )
        finally:
            monitor.close()
            stack.stop()


def test_fault_22_beat_moved_between_hosts_one_reconciliation_per_interval(
    tmp_path: Path, network: Network
) -> None:
    interval = 3.0
    outside = network.hosts[OUTSIDE].address
    with VendorStub(host=outside) as vendor:
        stack = hosts_stack(tmp_path, network, vendor, RECONCILE_INTERVAL_SECONDS=f"{interval:g}")
        runs: list[float] = []
        stop = threading.Event()

        def watch() -> None:
            seen = None
            while not stop.is_set():
                try:
                    _, summary = last_run(stack.ledger)
                except redis.RedisError:
                    summary = None
                if summary is not None and summary["at"] != seen:
                    seen = summary["at"]
                    # When it started: the throttle spaces starts (a run's own length, longer
                    # under load, is not what it limits).
                    runs.append(float(seen) - float(summary.get("seconds") or 0))
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        try:
            stack.start_receiver()
            stack.start_worker_on("a", "worker-a", concurrency=2)
            stack.start_worker_on("b", "worker-b", concurrency=2)
            watcher.start()
            beat_a = stack.start_beat_on("a", "beat-a")
            wait_until(lambda: len(runs) >= 3, 60)
            beat_b = stack.start_beat_on("b", "beat-b")  # both up: the move's overlap
            time.sleep(3 * interval)  # a rate is observed over a fixed window
            moved_at = time.time()
            beat_a.kill()
            before_move = len(runs)
            wait_until(lambda: len(runs) >= before_move + 3, 60)
            # Reconciliation still does its work from the new host: a lost webhook.
            stack.sandbox.add_fault(path="webhook", action="drop", times=1)
            lost = stack.sandbox.order(
                wait=True, order={"provisionRequest": {"companyDomain": unique_domain()}}
            )
            request_id = lost["provisionRequest"]["id"]
            stack.wait_state(request_id, "reported", timeout=60)
            stop.set()
            watcher.join(5)
            gaps = [later - earlier for earlier, later in zip(runs, runs[1:], strict=False)]
            after_move = [at for at in runs if at > moved_at]
            count_and_check(
                stack,
                vendor,
                "22 beat moved between hosts",
                [request_id],
                f"{len(runs)} runs, gaps {min(gaps):.1f}-{max(gaps):.1f}s at a {interval:g}s "
                f"interval, {len(after_move)} after the move",
            )
            # Never two in one interval (the throttle allows 0.9 of it), whichever beat sent it.
            assert min(gaps) >= 0.9 * interval - 0.2, gaps
            assert after_move and beat_b.alive()
        finally:
            stop.set()
            stack.stop()
