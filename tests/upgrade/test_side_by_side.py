"""A rolling deploy: the previous release and this one side by side on one Redis, for a while.

The order ``docs/upgrading.md#rolling-deploys`` gives: workers first (this release's worker
joins the previous release's, and stamps or migrates the ledger as it starts while the old
processes run on), then beat and the receivers (both releases' receivers behind one balancer
for a while, both beats), then the old receiver and beat leave, and the old worker last,
stopped as a deploy stops it. Orders arrive all along, a sixth of the vendor's answers are
503 with Retry-After (so retries written by one release are run by the other), and at the
end every order is reported once and provisioned once. The counts say how the work crossed:
orders one release's receiver accepted and the other's worker provisioned, both ways.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from config.version import LEDGER_SCHEMA, __version__
from tests.support.procs import Proc, free_port, wait_until
from tests.support.releases import Built
from tests.support.stack import HEADER, PROD_SECRET, Stack
from tests.support.vendor_stub import Script, VendorStub
from tests.upgrade.conftest import count
from tests.upgrade.test_upgrade import ENV, WORKER_GRACE, results_by_request

WHOSE = {"previous": "the previous release's", "this": "this release's", "?": "no"}
RATE = 6.0  # orders per second, spread over the receivers in the balancer


class Balancer(threading.Thread):
    """Pax8 behind a load balancer: orders posted round-robin over the receivers in it, a
    refused or failed delivery retried on the next one (as Pax8 retries)."""

    def __init__(self, stack: Stack, vendor: VendorStub) -> None:
        super().__init__(daemon=True)
        self.stack, self.vendor = stack, vendor
        self.receivers: dict[str, str] = {}
        self.accepted: dict[str, str] = {}  # request id → the release whose receiver took it
        self.retried = 0
        self.failure: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def add(self, release: str, url: str) -> None:
        with self._lock:
            self.receivers[release] = url

    def drain(self, release: str) -> None:
        """Take a receiver out: nothing more is sent to it."""
        with self._lock:
            self.receivers.pop(release)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(30)

    def run(self) -> None:
        try:
            with httpx.Client(timeout=10.0) as client:
                turn = 0
                while not self._halt.wait(1 / RATE):
                    body = self.stack.sandbox_notification()
                    if len(self.accepted) % 6 == 5:  # the next vendor call meets a busy vendor
                        self.vendor.then(Script(503, {"message": "busy"}, {"Retry-After": "1"}))
                    turn = self._deliver(client, body, turn)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc

    def _deliver(self, client: httpx.Client, body: dict[str, Any], turn: int) -> int:
        for attempt in range(10):
            with self._lock:
                live = sorted(self.receivers.items())
            release, url = live[(turn + attempt) % len(live)]
            try:
                response = client.post(
                    f"{url}/webhooks/pax8", json=body, headers={HEADER: PROD_SECRET}
                )
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 202:
                self.accepted[str(body["provisionRequest"]["id"])] = release
                return turn + 1
            self.retried += 1
        raise AssertionError(f"no receiver took {body['provisionRequest']['id']}")

    def wait_for(self, total: int, timeout: float = 60.0) -> None:
        wait_until(
            lambda: self.failure is not None or len(self.accepted) >= total,
            timeout,
            message=lambda: f"{len(self.accepted)} orders accepted, waiting for {total}",
        )
        if self.failure is not None:
            raise self.failure


def test_the_previous_release_and_this_one_side_by_side(
    tmp_path: Path, vendor: VendorStub, previous_release: Built
) -> None:
    old = previous_release
    stack = Stack(tmp_path, env={**ENV, "VENDOR_HTTP_URL": f"{vendor.url}/this"})
    old_env = {**stack.env, "VENDOR_HTTP_URL": f"{vendor.url}/previous"}
    balancer = Balancer(stack, vendor)
    name = f"side by side with {old.release.version}"
    started = time.monotonic()

    def start_old(line: str, proc_name: str, **env: str) -> Proc:
        proc = old.start(line, proc_name, {**old_env, **env}, tmp_path)
        stack.procs.append(proc)
        return proc

    try:
        old_web = start_old("web", "old-web", PORT=str(stack.receiver_port), BIND_HOST="127.0.0.1")
        old_web.wait_http(f"{stack.receiver_url}/healthz", timeout=60)
        old_worker = start_old("worker", "old-worker", PORT=str(free_port()))
        old_worker.wait_log("ready.", timeout=60)
        old_beat = start_old("beat", "old-beat", BEAT_SCHEDULE_FILE=str(tmp_path / "old-beat"))
        balancer.add("previous", stack.receiver_url)
        balancer.start()
        balancer.wait_for(10)

        # Workers first: this release's worker joins, and stamps the ledger as it starts.
        stack.start_worker("new-worker")
        stamp = stack.redis().hgetall("ff:schema")
        assert stamp["version"] == str(LEDGER_SCHEMA) and stamp["release"] == __version__
        balancer.wait_for(30)

        # Then beat and the receivers: both releases' receivers take orders for a while.
        new_port = free_port()
        new_url = f"http://127.0.0.1:{new_port}"
        new_web = stack.start("web", "new-web", PORT=str(new_port), BIND_HOST="127.0.0.1")
        new_web.wait_http(f"{new_url}/healthz")
        ready = httpx.get(f"{new_url}/readyz").json()
        assert ready == {"status": "ok", "release": __version__, "schema": LEDGER_SCHEMA}
        stack.start_beat("new-beat")
        balancer.add("this", new_url)
        balancer.wait_for(60)

        # The previous release leaves: its receiver drained first, then beat, then its worker.
        balancer.drain("previous")
        old_web.deploy_stop(12.0)
        old_beat.deploy_stop(WORKER_GRACE)
        balancer.wait_for(70)
        killed = old_worker.deploy_stop(WORKER_GRACE)
        balancer.wait_for(80)
        balancer.stop()
        if balancer.failure is not None:
            raise balancer.failure

        accepted = dict(balancer.accepted)

        def unreported() -> list[tuple[str, str | None]]:
            states = {i: (r.state if (r := stack.record(i)) else None) for i in accepted}
            return [(i, state) for i, state in states.items() if state != "reported"]

        wait_until(
            lambda: not unreported(), 120, message=lambda: f"not reported: {unreported()[:10]}"
        )

        # -- the counts -------------------------------------------------------------------------
        results = results_by_request(stack, list(accepted))
        by_worker: dict[str, str] = {}
        crossed_retries = 0
        for request_id in accepted:
            calls = vendor.calls_for(request_id)
            worked = [c.path.rsplit("/", 1)[-1] for c in calls if c.status == 200]
            by_worker[request_id] = worked[-1] if worked else "?"
            if len({c.path for c in calls}) > 1:
                crossed_retries += 1
        pairs = Counter((accepted[i], by_worker[i]) for i in accepted)
        for took in ("previous", "this"):
            ids = [i for i in accepted if accepted[i] == took]
            got = sum(len(results[i]) for i in ids)
            made = sum(len(vendor.provisionings(i)) for i in ids)
            note = ", ".join(
                f"{n} provisioned by {WHOSE[w]} worker"
                for (a, w), n in sorted(pairs.items()) if a == took
            )  # fmt: skip
            count(name, f"accepted by {WHOSE[took]} receiver", len(ids), got, made, note)
        print(
            f"[{name}] {len(accepted)} orders, {balancer.retried} deliveries retried, "
            f"{crossed_retries} orders called by both releases' workers (a retry crossed); "
            f"old worker {'killed past its grace' if killed else 'stopped warm'}; "
            f"{time.monotonic() - started:.1f}s"
        )
        assert all([r["status"] for r in results[i]] == ["Success"] for i in accepted), results
        assert all(len(vendor.provisionings(i)) == 1 for i in accepted)
        # Both directions crossed: each release's worker ran messages the other wrote.
        assert pairs[("previous", "this")] > 0 and pairs[("this", "previous")] > 0, pairs
        wait_until(lambda: not stack.redis().hlen("unacked"), 60, message="unacked left")
    finally:
        balancer.stop()
        stack.stop()
