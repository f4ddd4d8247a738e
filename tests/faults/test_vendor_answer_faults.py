"""Faults 12e, 12f: a vendor endpoint whose answers say the deployment is wrong.

A real receiver and worker (Procfile lines), the ``http`` adapter against a vendor on
loopback, the sandbox playing Pax8, a Sentry collector and the worker's metrics exporter:

* 12e: the endpoint answers redirects (302, 307) before the fix is in, then does the work;
  another keeps redirecting past the retry budget. Never a ``Success`` (nor a ``Fail``) at
  Pax8 while it redirects; one ``Success`` once it answers 2xx, provisioned once; the other
  goes ``dead`` with nothing reported; each is alerted with the redirect's target and the fix,
  and counted by ``fulfillment_vendor_misconfigured_total{problem="redirect", backend=...}``.
* 12f: the endpoint answers ``200`` with a 40 MB body: the worker reads 64 KiB of it, its
  memory stays where it was, and the order is held (the ids cannot be read), not reported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.conftest import FAULT_ENV, results_by_request, tally
from tests.support.loopback import LoopbackServer
from tests.support.procs import Proc, free_port, wait_until
from tests.support.sentry_server import SentryServer
from tests.support.stack import Stack
from tests.support.vendor_stub import Keys, Script, VendorStub

MOVED = "https://moved.vendor.test/v2/orders"
BUDGET = 2  # PROVISION_MAX_RETRIES: three calls, then dead
BIG = 40 * 1024 * 1024


class BigAnswer(LoopbackServer):
    """Answers every POST ``200`` with a JSON body of :data:`BIG` bytes, and counts what the
    caller really took before it hung up."""

    def __init__(self) -> None:
        self.calls = 0
        self.written: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.calls += 1
                head = b'{"subscriptionId": "sub-big", "metadata": {"blob": "'
                tail = b'"}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(BIG))
                self.end_headers()
                chunk = b"x" * 65536
                written = 0
                try:
                    self.wfile.write(head)
                    written = len(head)
                    while written + len(chunk) + len(tail) <= BIG:
                        self.wfile.write(chunk)
                        written += len(chunk)
                    self.wfile.write(b"x" * (BIG - written - len(tail)) + tail)
                    written = BIG
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker stopped reading at its cap and hung up
                server.written.append(written)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, name="big-answer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/orders"


@pytest.fixture(scope="module")
def vendor() -> Iterator[VendorStub]:
    # Keys ignored: a redirecting proxy in front of the vendor never let it see the call, so
    # nothing is stored under the key; the first call that gets through does the work.
    with VendorStub(keys=Keys.IGNORED) as stub:
        yield stub


@pytest.fixture(scope="module")
def sentry() -> Iterator[SentryServer]:
    with SentryServer() as server:
        yield server


def answer_stack(tmp_path: Path, url: str, sentry: SentryServer, metrics_port: int) -> Stack:
    return Stack(
        tmp_path,
        env={
            **FAULT_ENV,
            "VENDOR_ADAPTER": "http",
            "VENDOR_HTTP_URL": url,
            "VENDOR_HTTP_TIMEOUT_SECONDS": "5",
            "PROVISION_MAX_RETRIES": str(BUDGET),
            "RETRY_BACKOFF_SECONDS": "0.3",
            "RETRY_BACKOFF_MAX_SECONDS": "1",
            "SENTRY_DSN": sentry.dsn,
            "WORKER_METRICS_PORT": str(metrics_port),
        },
    )


def post(stack: Stack) -> str:
    body = stack.sandbox_notification()
    assert stack.post_webhook(body).status_code == 202
    return str(body["provisionRequest"]["id"])


def alerts(sentry: SentryServer, request_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in sentry.events()
        if (e.get("tags") or {}).get("provision_request_id") == request_id
    ]


def misconfigured(port: int, problem: str, backend: str = "default") -> float:
    """The worker's count of held answers of ``problem`` (no routes file: one backend)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fulfillment_vendor_misconfigured_total" and sample.labels == {
                "problem": problem,
                "backend": backend,
            }:
                return float(sample.value)
    return 0.0


def test_fault_12e_a_redirecting_vendor_never_yields_a_success(
    tmp_path: Path, vendor: VendorStub, sentry: SentryServer
) -> None:
    port = free_port()
    stack = answer_stack(tmp_path, vendor.url, sentry, port)
    try:
        stack.start_receiver()
        stack.start_worker(concurrency=1)
        # Held, then fixed: two redirects, then the endpoint does the work.
        vendor.then(
            Script(status=302, headers={"Location": MOVED}),
            Script(status=307, headers={"Location": MOVED + "?session=s3cr3t"}),
        )
        fixed = post(stack)
        stack.wait_state(fixed, "reported", timeout=60)
        # Redirects past the budget: dead, nothing reported.
        vendor.then(*[Script(status=302, headers={"Location": MOVED})] * (BUDGET + 1))
        given_up = post(stack)
        dead = stack.wait_state(given_up, "dead", timeout=60)

        results = results_by_request(stack, [fixed, given_up])
        calls = {r: [c.status for c in vendor.calls_for(r)] for r in (fixed, given_up)}
        tally(
            "12e vendor redirects (302, 307): held, never Success",
            2,
            sum(len(v) for v in results.values()),
            len(vendor.provisionings(fixed)) + len(vendor.provisionings(given_up)),
            0,
            f"calls {calls[fixed]} then dead after {calls[given_up]}",
        )
        assert calls[fixed] == [302, 307, 200]
        assert [r["status"] for r in results[fixed]] == ["Success"]
        assert len(vendor.provisionings(fixed)) == 1
        assert calls[given_up] == [302] * (BUDGET + 1)
        assert results[given_up] == [] and vendor.provisionings(given_up) == []
        assert "redirect" in (dead.error or "") and MOVED in (dead.error or "")
        # No Success (nor Fail) was ever posted while the endpoint redirected.
        assert all(r["status"] == "Success" for r in stack.sandbox.results())

        # Alerted once per order and message, naming the target and the fix; the query of
        # a redirect (outside input that may carry a secret) never shown.
        def sent() -> list[dict[str, Any]] | None:
            found = alerts(sentry, fixed)
            return found if len(found) >= 2 else None

        held = wait_until(sent, 20)
        messages = [e["exception"]["values"][-1]["value"] for e in held]
        assert [e["exception"]["values"][-1]["type"] for e in held] == ["VendorMisconfigured"] * 2
        assert all(MOVED in m and "set VENDOR_HTTP_URL to the final URL" in m for m in messages)
        assert b"s3cr3t" not in b"".join(sentry.envelopes)
        assert "s3cr3t" not in stack.describe()
        wait_until(lambda: len(alerts(sentry, given_up)) >= 2, 20)  # the alert, then dead
        assert misconfigured(port, "redirect") == 2 + BUDGET + 1
    finally:
        stack.stop()


def _rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def test_fault_12f_a_40_mb_answer_is_read_to_its_cap_and_holds_the_order(
    tmp_path: Path, sentry: SentryServer
) -> None:
    with BigAnswer() as big:
        port = free_port()
        stack = answer_stack(tmp_path, big.url, sentry, port)
        try:
            stack.start_receiver()
            worker: Proc = stack.start_worker(concurrency=1)
            (child,) = wait_until(lambda: stack.pool_children(worker), 10)
            # Warm the child (imports, the adapter, a first call) before measuring.
            warm = post(stack)
            stack.wait_state(warm, "dead", timeout=60)
            before = _rss(child)
            peak = [before]
            stop = threading.Event()

            def watch() -> None:
                while not stop.is_set():
                    peak.append(_rss(child))
                    time.sleep(0.02)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                request_id = post(stack)
                record = stack.wait_state(request_id, "dead", timeout=60)
            finally:
                stop.set()
                watcher.join(5)
            grew = max(peak) - before
            taken = max(big.written)
            tally(
                "12f vendor answers 200 with 40 MB",
                1,
                len(results_by_request(stack, [request_id])[request_id]),
                0,
                0,
                f"worker RSS +{grew / 2**20:.1f} MiB, at most {taken / 2**20:.1f} MiB sent",
            )
            assert results_by_request(stack, [request_id])[request_id] == []
            assert "VENDOR_HTTP_MAX_ANSWER_BYTES" in (record.error or "")
            assert grew < 16 * 2**20, f"the pool child grew {grew / 2**20:.1f} MiB"
            assert misconfigured(port, "too-large") == 2 * (BUDGET + 1)
            assert record.metadata == {}
        finally:
            stack.stop()
