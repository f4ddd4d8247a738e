"""Metrics from a running stack: the receiver (gunicorn, Procfile ``web``), a worker
(``worker``) and beat (``beat``) each serve their exporter on a port of their own; the test
sends orders that succeed, fail, die and get refused, scrapes every exporter with the
token, checks the figures against what it did and what the ledger holds, and passes each
scrape through ``promtool check metrics``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fulfillment.names import ALL_QUEUES
from tests.support.procs import Proc, free_port, wait_until
from tests.support.stack import Stack, notification

TOKEN = "metrics-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class Running:
    """The stack and where each exporter listens."""

    def __init__(self, stack: Stack, tmp: Path) -> None:
        self.stack = stack
        self.tmp = tmp
        self.web_port, self.worker_port, self.beat_port = free_port(), free_port(), free_port()
        self.web: Proc | None = None
        self.worker: Proc | None = None

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/metrics"

    def scrape(self, port: int) -> str:
        response = httpx.get(self.url(port), headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return response.text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def promtool_check(text: str) -> None:
    """``promtool check metrics``: the exposition parses and follows Prometheus' naming lint."""
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), (
        done.stdout + done.stderr
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("metrics")
    # Each process kind makes its metric directory under TMPDIR: here, where the test looks.
    (tmp / "tmpdir").mkdir()
    stack = Stack(
        tmp,
        env={
            "METRICS_TOKEN": TOKEN,
            "TMPDIR": str(tmp / "tmpdir"),
            "RECONCILE_INTERVAL_SECONDS": "2",
            # Simulated orders go to an adapter with a bug: they die (adapter-error).
            "SIMULATION_VENDOR_ADAPTER": "tests.support.adapters:BuggyAdapter",
        },
    )
    out = Running(stack, tmp)
    try:
        out.web = stack.start_receiver(WEB_METRICS_PORT=str(out.web_port))
        out.worker = stack.start_worker(WORKER_METRICS_PORT=str(out.worker_port))
        beat = stack.start_beat(BEAT_METRICS_PORT=str(out.beat_port))
        for proc, port in ((out.web, out.web_port), (out.worker, out.worker_port),
                           (beat, out.beat_port)):  # fmt: skip
            proc.wait_port(port)
        yield out
    finally:
        stack.stop()


def test_every_exporter_serves_promtool_clean_figures_of_what_happened(running: Running) -> None:
    stack = running.stack
    good = [stack.sandbox_notification() for _ in range(3)]
    refused = stack.sandbox_notification(type="Deprovision")  # unknown to the vendor: a Fail
    dead = stack.sandbox_notification(simulation=True)
    for body in (*good, refused):
        assert stack.post_webhook(body).status_code == 202
    assert stack.post_webhook(dead, secret="test-simulation-secret").status_code == 202
    assert stack.post_webhook(b"not json").status_code == 400
    assert stack.post_webhook(notification(), secret="wrong").status_code == 401
    for body in (*good, refused):
        stack.wait_state(body["provisionRequest"]["id"], "reported")
    stack.wait_state(dead["provisionRequest"]["id"], "dead")

    web = running.scrape(running.web_port)
    route = "/webhooks/pax8"
    assert value(web, "fulfillment_webhooks_total", route=route, status="202") == 5
    assert value(web, "fulfillment_webhooks_total", route=route, status="400") == 1
    assert value(web, "fulfillment_webhooks_total", route=route, status="401") == 1
    assert value(web, "fulfillment_webhook_duration_seconds_count", route=route) == 7
    assert value(web, "fulfillment_webhook_duration_seconds_bucket", route=route, le="+Inf") == 7

    worker = running.scrape(running.worker_port)
    calls, backend = "fulfillment_vendor_calls_total", "default"  # no routes file: one route
    assert value(worker, calls, type="NetNew", outcome="success", backend=backend) == 3
    assert value(worker, calls, type="Deprovision", outcome="refused", backend=backend) == 1
    assert value(worker, calls, type="NetNew", outcome="error", backend=backend) == 1
    duration = "fulfillment_vendor_call_duration_seconds_count"
    assert value(worker, duration, type="NetNew", backend=backend) == 4
    assert value(worker, "fulfillment_results_posted_total", status="Success") == 3
    assert value(worker, "fulfillment_results_posted_total", status="Fail") == 1
    assert value(worker, "fulfillment_orders_dead_total", reason="adapter-error") == 1

    # The ledger's view: beat's exporter reads it at scrape time, whoever changed it.
    def reconciled() -> str:
        text = running.scrape(running.beat_port)
        return text if value(text, "fulfillment_reconcile_runs_total") >= 1 else ""

    beat = wait_until(reconciled, 30, 0.5, message="no reconciliation counted")
    counts = stack.ledger.counts()
    for state, count in counts.items():
        assert value(beat, "fulfillment_orders", state=state) == count, state
    assert counts["reported"] == 4 and counts["dead"] == 1
    assert value(beat, "fulfillment_redis_up") == 1
    for queue in ALL_QUEUES:
        assert ("fulfillment_queue_messages", (("queue", queue),)) in samples(beat)
    assert ("fulfillment_queue_unacked_messages", ()) in samples(beat)
    assert value(beat, "fulfillment_unreported_oldest_age_seconds") == 0
    assert value(beat, "fulfillment_reconcile_interval_seconds") == 2
    runs = value(beat, "fulfillment_reconcile_runs_total")
    assert value(beat, "fulfillment_reconcile_duration_seconds_count") == runs
    assert value(beat, "fulfillment_reconcile_last_run_timestamp_seconds") > 0

    for text in (web, worker, beat):
        promtool_check(text)
    # No per-order label anywhere: no sample names a request id.
    for body in (*good, refused, dead):
        assert body["provisionRequest"]["id"] not in web + worker + beat


def test_a_scrape_needs_the_token_and_the_webhook_port_has_no_metrics(running: Running) -> None:
    for port in (running.web_port, running.worker_port, running.beat_port):
        assert httpx.get(running.url(port), timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert httpx.get(running.url(port), headers=wrong, timeout=5).status_code == 401
        other = httpx.get(f"http://127.0.0.1:{port}/", headers=AUTH, timeout=5)
        assert other.status_code == 404
    webhook_port = httpx.get(f"{running.stack.receiver_url}/metrics", headers=AUTH, timeout=5)
    assert webhook_port.status_code == 404


def test_counts_survive_a_killed_web_worker_and_pool_process(running: Running) -> None:
    """Multi-process mode: what a dead child counted stays counted; its replacement adds."""
    stack = running.stack
    assert running.web is not None and running.worker is not None
    route = "/webhooks/pax8"
    before = value(running.scrape(running.web_port), "fulfillment_webhooks_total",
                   route=route, status="202")  # fmt: skip
    before_calls = value(running.scrape(running.worker_port), "fulfillment_vendor_calls_total",
                         type="NetNew", outcome="success", backend="default")  # fmt: skip
    web_children = psutil.Process(running.web.pid).children()
    assert web_children
    for child in web_children:
        os.kill(child.pid, signal.SIGKILL)
    for child in stack.pool_children(running.worker):
        os.kill(child, signal.SIGKILL)

    def replaced() -> bool:
        now = {c.pid for c in psutil.Process(running.web.pid).children()}  # type: ignore[union-attr]
        return bool(now) and not now & {c.pid for c in web_children}

    wait_until(replaced, 30, 0.2, message="gunicorn did not replace its workers")
    body = stack.sandbox_notification()
    response = wait_until(lambda: stack.post_webhook(body), 30, 0.2)
    assert response.status_code == 202
    stack.wait_state(body["provisionRequest"]["id"], "reported", timeout=60)

    web = running.scrape(running.web_port)
    assert value(web, "fulfillment_webhooks_total", route=route, status="202") == before + 1
    worker = running.scrape(running.worker_port)
    labels = {"type": "NetNew", "outcome": "success", "backend": "default"}
    calls = value(worker, "fulfillment_vendor_calls_total", **labels)
    assert calls == before_calls + 1
    promtool_check(web)
    promtool_check(worker)


def test_each_process_kind_keeps_its_files_in_its_own_directory_and_removes_it(
    running: Running,
) -> None:
    tmpdir = running.tmp / "tmpdir"
    dirs = {path.name.split("-")[2]: path for path in tmpdir.glob("fulfillment-metrics-*")}
    assert set(dirs) == {"web", "worker"}, dirs
    assert any(dirs["web"].glob("counter_*.db")) and any(dirs["worker"].glob("counter_*.db"))
    assert oct(dirs["web"].stat().st_mode & 0o777) == "0o700"
    assert running.web is not None and running.worker is not None
    running.web.stop()
    running.worker.stop()
    assert not dirs["web"].exists() and not dirs["worker"].exists()
