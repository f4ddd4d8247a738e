"""An upgrade with orders in flight: the previous release stopped as a deploy stops it, this
code started on the same Redis, and every order reported once and provisioned once.

The previous release is built from the history (``tests/support/releases.py``) and run from
its own Procfile with its own venv; this code from this tree's Procfile. Both call one
vendor (the loopback stub behind the ``http`` adapter, which counts every provisioning) and
one Pax8 (the sandbox). Before the stop, orders are put in every state an upgrade can meet:

* **done**: reported before the upgrade (nothing must happen to them again);
* **owed a result**: provisioned, Pax8 refusing results (503), the report retrying;
* **waiting a countdown**: the vendor answered 503 with Retry-After, the retry is held;
* **reconciliation mid-run**: Pax8's unfulfilled list hangs, the run holds its lock;
* **claimed mid-call**: the vendor did the work and holds its answer back;
* **accepted and queued**: accepted by the old receiver after the old workers stopped
  (a message in the old format in the queue);
* **a CloudBlue call waiting**: the old receiver answers it 503 at its deadline as it stops;
  the platform's retry reaches the new receiver.

The stop is a deploy's: SIGTERM to each main process, SIGKILL to what is left past the
grace time (workers first, then the receiver, which still accepts meanwhile). Then the new
code starts (workers, beat, receiver), stamps the ledger (0.1.0's data carries no schema
stamp), takes the queued messages at once and the unacknowledged ones when Redis hands them
back (the visibility timeout), and the counts must come out even.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.version import LEDGER_SCHEMA, __version__
from tests.support import cloudblue
from tests.support.procs import Proc, free_port, wait_until
from tests.support.releases import HistoryMissing, previous
from tests.support.stack import Stack
from tests.support.vendor_stub import Script, VendorStub
from tests.upgrade.conftest import VENDOR_TOKEN, count

ALSO_FROM = ("0.1.0",)
"""Releases the upgrade is also tested from, besides the previous one. 0.1.0 kept no schema
stamp: its data takes a path of its own (adopted as schema 1), which every later release
still offers, and deployments that skipped releases come from it. Drop it here the day a
release stops reading unversioned data (``fulfillment/ledger/schema.py``: UNVERSIONED)."""


def sources() -> list[str]:
    """The releases to upgrade from: the previous one first, then ``ALSO_FROM``."""
    try:
        first = [previous().version]
    except HistoryMissing:
        first = []  # the fixture fails with the reason; nothing is skipped silently
    return list(dict.fromkeys([*first, *ALSO_FROM]))


# Limits short enough that what Redis hands back after a crash comes back within a minute:
# the visibility timeout must exceed the longest countdown plus the hard time limit; the
# vendor call's deadline stays below the soft limit.
ENV = {
    "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
    "TASK_TIME_LIMIT_SECONDS": "25",
    "VISIBILITY_TIMEOUT_SECONDS": "40",
    "RETRY_BACKOFF_SECONDS": "0.2",
    "RETRY_BACKOFF_MAX_SECONDS": "2",
    "RECONCILE_INTERVAL_SECONDS": "4",
    "RECONCILE_LOCK_SECONDS": "26",
    "PAX8_TIMEOUT_SECONDS": "30",
    "VENDOR_ADAPTER": "http",
    "VENDOR_HTTP_TOKEN": VENDOR_TOKEN,
    "VENDOR_HTTP_TIMEOUT_SECONDS": "15",
    "CLOUDBLUE_WEBHOOK_SECRETS": cloudblue.SECRET,
    "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "6",
}
WORKER_GRACE = 5.0  # a deploy's grace for workers (held vendor calls outlast it: SIGKILL)
WEB_GRACE = 12.0  # the receiver's: its graceful timeout is the CloudBlue wait + 5 s
COUNTDOWN = 10  # the vendor's Retry-After for the countdown group (<= the longest allowed)


def post_orders(stack: Stack, n: int) -> list[str]:
    """``n`` orders Pax8 holds, notified to whichever receiver listens; their request ids."""
    ids = []
    for _ in range(n):
        body = stack.sandbox_notification()
        response = stack.post_webhook(body)
        assert response.status_code == 202, response.text
        ids.append(str(body["provisionRequest"]["id"]))
    return ids


def bodies(stack: Stack, n: int) -> list[dict[str, Any]]:
    return [stack.sandbox_notification() for _ in range(n)]


def ids_of(notifications: list[dict[str, Any]]) -> list[str]:
    return [str(body["provisionRequest"]["id"]) for body in notifications]


def wait_states(stack: Stack, ids: list[str], *states: str, timeout: float = 30.0) -> None:
    for request_id in ids:
        stack.wait_state(request_id, *states, timeout=timeout)


def fault_fired(stack: Stack, rule_id: int) -> bool:
    return any(rule["id"] == rule_id and rule["fired"] > 0 for rule in stack.sandbox.faults())


class CloudBlueCall(threading.Thread):
    """A CloudBlue request-URL call, waiting in a thread for the receiver's answer."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=60.0) as client:
                self.response = cloudblue.post(client, self.url, self.body)
        except httpx.HTTPError as exc:  # a connection reset, if killed past its grace
            self.error = exc


@pytest.mark.parametrize("release_from", sources(), indirect=True)
def test_orders_in_flight_survive_the_upgrade_from_the_previous_release(
    tmp_path: Path, vendor: VendorStub, release_from: Any
) -> None:
    old = release_from
    stack = Stack(tmp_path, env={**ENV, "VENDOR_HTTP_URL": vendor.url})
    started = time.monotonic()
    name = f"upgrade from {old.release.version}"
    try:
        # -- the previous release, with orders in every state an upgrade can meet ---------
        def start_old(line: str, proc_name: str, **env: str) -> Proc:
            proc = old.start(line, proc_name, {**stack.env, **env}, tmp_path)
            stack.procs.append(proc)
            return proc

        web = start_old("web", "old-web", PORT=str(stack.receiver_port), BIND_HOST="127.0.0.1")
        web.wait_http(f"{stack.receiver_url}/healthz", timeout=60)
        worker = start_old("worker", "old-worker", WORKER_CONCURRENCY="3", PORT=str(free_port()))
        worker.wait_log("ready.", timeout=60)
        beat = start_old("beat", "old-beat", BEAT_SCHEDULE_FILE=str(tmp_path / "old-beat"))
        beat.wait_log("beat: Starting", timeout=60)
        assert f"pax8-fulfillment {old.release.version}: worker starting" in worker.log()

        done = post_orders(stack, 3)
        wait_states(stack, done, "reported")

        owed = bodies(stack, 2)
        for request_id in ids_of(owed):
            stack.sandbox.add_fault(
                method="POST", path=f"/v2/provision-requests/{request_id}/results",
                action="error", status=503,
            )  # fmt: skip
        for body in owed:
            assert stack.post_webhook(body).status_code == 202
        owed_ids = ids_of(owed)
        wait_until(
            lambda: all(
                (r := stack.record(i)) is not None and r.state == "provisioned"
                and r.report_retries >= 1 for i in owed_ids
            ),
            30, message=lambda: f"not owed a result: {[stack.record(i) for i in owed_ids]}",
        )  # fmt: skip

        busy = Script(503, {"message": "busy"}, {"Retry-After": str(COUNTDOWN)})
        vendor.then(busy, busy)
        countdown = post_orders(stack, 2)
        wait_until(
            lambda: all((r := stack.record(i)) is not None and r.retries >= 1 for i in countdown),
            30, message=lambda: f"no countdown: {[stack.record(i) for i in countdown]}",
        )  # fmt: skip

        hang = stack.sandbox.add_fault(
            method="GET", path="/v2/provision-requests/unfulfilled", action="delay", seconds=60
        )
        wait_until(lambda: fault_fired(stack, hang["id"]), 30, message="no reconciliation ran")
        assert stack.redis().exists("ff:lock:reconcile")  # the run holds its lock

        mid_call = bodies(stack, 2)
        mid_ids = ids_of(mid_call)
        vendor.hold(lambda call: call.order["provisionRequest"]["id"] in mid_ids)
        for body in mid_call:
            assert stack.post_webhook(body).status_code == 202
        wait_until(lambda: len(vendor.held()) == 2, 30, message="the vendor holds no call")
        assert len(vendor.provisionings()) == 3 + 2 + 2  # done, owed, mid-call: work done

        # -- the deploy stops it: workers first, the receiver still accepting --------------
        stopping = time.monotonic()
        assert worker.deploy_stop(WORKER_GRACE), "the worker stopped with calls in its hands"
        beat.deploy_stop(WORKER_GRACE)
        queued = post_orders(stack, 3)
        cb_body = cloudblue.payload("creation")
        cb_url = f"{stack.receiver_url}/webhooks/cloudblue"
        waiting = CloudBlueCall(cb_url, cb_body)
        waiting.start()
        wait_until(lambda: _cloudblue_recorded(stack), 10, message="no CloudBlue record")
        web.deploy_stop(WEB_GRACE)
        waiting.join(WEB_GRACE)
        stopped = time.monotonic() - stopping
        answered = waiting.response.status_code if waiting.response is not None else waiting.error
        assert answered == 503, f"the waiting CloudBlue call got {answered!r}"
        stack.sandbox.clear_faults()  # Pax8 takes results again
        vendor.hold(None)
        vendor.release()
        in_redis = {
            "queued": sum(stack.redis().llen(q) for q in stack.redis().keys("fulfillment.*")),
            "unacked": stack.redis().hlen("unacked"),
        }
        runs_before, _ = stack.ledger.reconcile_runs()
        groups: dict[str, list[str]] = {
            "done before the upgrade": done,
            "provisioned, owed a result": owed_ids,
            "waiting a countdown retry": countdown,
            "claimed mid-call at the vendor": mid_ids,
            "accepted and queued": queued,
        }
        expected = {
            "done before the upgrade": "reported",
            "provisioned, owed a result": "provisioned",
            "waiting a countdown retry": "queued",
            "claimed mid-call at the vendor": "provisioning",
            "accepted and queued": "queued",
        }
        for group, ids in groups.items():  # each order is where this test says it is
            states = [(r.state if (r := stack.record(i)) else None) for i in ids]
            assert states == [expected[group]] * len(ids), (group, states)
        assert stack.redis().exists("ff:lock:reconcile")  # the killed run's lock, still held
        if old.release.version == "0.1.0":
            assert not stack.redis().exists("ff:schema")  # 0.1.0 keeps no stamp
        else:  # a later release stamped it as it started
            assert stack.redis().hget("ff:schema", "release") == old.release.version

        # -- this release on the same Redis --------------------------------------------------
        upgraded = time.monotonic()
        new_worker = stack.start_worker("new-worker", concurrency=2)
        stack.start_beat("new-beat")
        stack.start_receiver()
        stamp = stack.redis().hgetall("ff:schema")
        assert stamp["version"] == str(LEDGER_SCHEMA) and stamp["release"] == __version__
        if old.release.version == "0.1.0":
            assert stamp["from"] == "unversioned"
            assert "no schema stamp (data of 0.1.0); stamped schema" in new_worker.log(10**7)

        retry = cloudblue.post(stack.http, cb_url, cb_body)  # the platform's retry
        assert retry.status_code == 200, retry.text
        cb_id = retry.headers["X-Fulfillment-Request-Id"]

        every = [i for ids in groups.values() for i in ids]
        wait_states(stack, every, "reported", timeout=120)
        wait_until(
            lambda: stack.ledger.reconcile_runs()[0] > runs_before, 60,
            message="no reconciliation ran after the upgrade",
        )  # fmt: skip
        took = time.monotonic() - upgraded

        # -- the counts ----------------------------------------------------------------------
        results = results_by_request(stack, every)
        for group, ids in groups.items():
            got = sum(len(results[i]) for i in ids)
            made = sum(len(vendor.provisionings(i)) for i in ids)
            count(name, group, len(ids), got, made)
            assert all([r["status"] for r in results[i]] == ["Success"] for i in ids), results
            assert all(len(vendor.provisionings(i)) == 1 for i in ids), group
        cb_made = len(vendor.provisionings(cb_id))
        count(name, "a CloudBlue call waiting", 1, int(retry.status_code == 200), cb_made,
              f"old receiver answered {answered}, the retry 200")  # fmt: skip
        assert cb_made == 1
        body = retry.json()
        cloudblue.check_response(body)
        (cb_work,) = vendor.provisionings(cb_id)
        assert (
            body["vendorSubscriptionId"] == cb_work["answer"]["externalProvisionerSubscriptionId"]
        )
        runs_after, last = stack.ledger.reconcile_runs()
        assert last is not None and last["ran"] and not last["errors"], last
        count(name, "reconciliation mid-run (its lock held)", 1, 1, 0,
              f"a run since the upgrade completed ({runs_after - runs_before} in all)")  # fmt: skip
        # Nothing left behind: no message queued or held, no lock stuck.
        wait_until(lambda: not stack.redis().hlen("unacked"), 30, message="unacked left")
        assert not any(stack.redis().llen(q) for q in stack.redis().keys("fulfillment.*"))
        print(
            f"[{name}] in Redis at the upgrade: {in_redis['queued']} queued, "
            f"{in_redis['unacked']} unacknowledged; the deploy stopped it in {stopped:.1f}s; "
            f"every order reported {took:.1f}s after this release started; "
            f"{time.monotonic() - started:.1f}s in all"
        )
    finally:
        vendor.hold(None)
        vendor.release()
        stack.stop()


def _cloudblue_recorded(stack: Stack) -> bool:
    """Whether the receiver recorded the CloudBlue call (the test's only one)."""
    return any(r.source == "cloudblue" for r in stack.ledger.recent(50))


def results_by_request(stack: Stack, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for result in stack.sandbox.results():
        if result["provisionRequestId"] in found:
            found[result["provisionRequestId"]].append(result)
    return found
