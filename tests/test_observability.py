"""Observability with the real integrations: Sentry (a loopback DSN), Flower from the
Procfile, JSON state-change logs and the /metrics counters."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.version import LEDGER_SCHEMA, MESSAGE_FORMAT
from tests.support.procs import free_port, wait_until
from tests.support.sentry_server import SentryServer
from tests.support.stack import Stack

METRICS_TOKEN = "observability-metrics-token"


@pytest.fixture(scope="module")
def sentry() -> Iterator[SentryServer]:
    with SentryServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sentry: SentryServer) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("observability"),
        env={
            "SENTRY_DSN": sentry.dsn,
            "LOG_FORMAT": "json",
            "RECONCILE_INTERVAL_SECONDS": "2",
            "METRICS_TOKEN": METRICS_TOKEN,
        },
    )
    try:
        running.start_receiver()
        yield running
    finally:
        running.stop()


def tagged(event: dict[str, Any], key: str) -> Any:
    tags = event.get("tags") or {}
    if isinstance(tags, list):
        tags = dict(tags)
    return tags.get(key)


def test_a_dead_order_is_a_sentry_event_with_its_request_id(
    stack: Stack, sentry: SentryServer
) -> None:
    worker = stack.start_worker(
        "worker-buggy", VENDOR_ADAPTER="tests.support.adapters:BuggyAdapter"
    )
    try:
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        stack.wait_state(request_id, "dead")
        event = wait_until(
            lambda: next(
                (e for e in sentry.events() if tagged(e, "provision_request_id") == request_id),
                None,
            ),
            20,
            message=lambda: f"no Sentry event for {request_id}: {sentry.events()}",
        )
        assert event["exception"]["values"][-1]["type"] == "KeyError"
        assert event["contexts"]["order"]["request_id"] == request_id
        assert tagged(event, "component") == "worker"
    finally:
        worker.stop()


def test_an_unexpected_receiver_error_is_a_json_500_and_a_sentry_event(
    stack: Stack, sentry: SentryServer
) -> None:
    body = stack.sandbox_notification()
    request_id = body["provisionRequest"]["id"]
    stack.redis().set(
        f"ff:req:pax8:{request_id}", "not a hash"
    )  # a corrupt record: a bug, not an outage
    response = stack.post_webhook(body)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "status": 500}
    event = wait_until(
        lambda: next((e for e in sentry.events() if tagged(e, "component") == "receiver"), None),
        20,
        message=lambda: str(sentry.events()),
    )
    assert "WRONGTYPE" in json.dumps(event["exception"])
    assert event["request"]["url"].endswith("/webhooks/pax8")
    assert "pax8ApiTokenV1" not in json.dumps(event.get("request", {}).get("headers", {}))


@pytest.mark.slow
def test_reconciliation_is_a_sentry_cron_monitor(stack: Stack, sentry: SentryServer) -> None:
    # Sentry Crons only monitors whole-minute intervals, so this waits one minute.
    worker = stack.start_worker("worker-cron", RECONCILE_INTERVAL_SECONDS="60")
    beat = stack.start_beat(RECONCILE_INTERVAL_SECONDS="60")
    try:

        def reconcile_check_ins() -> list[dict[str, Any]]:
            found = [c for c in sentry.check_ins() if c.get("monitor_slug") == "reconcile"]
            return found if {c["status"] for c in found} >= {"in_progress", "ok"} else []

        check_ins = wait_until(
            reconcile_check_ins, 90, 0.5, message=lambda: str(sentry.check_ins())
        )
        assert check_ins[0]["monitor_config"]["schedule"] == {
            "type": "interval",
            "value": 1,
            "unit": "minute",
        }
    finally:
        beat.stop()
        worker.stop()


def test_json_logs_have_one_line_per_state_change(stack: Stack) -> None:
    worker = stack.start_worker("worker-json")
    try:
        body = stack.sandbox_notification()
        request_id = body["provisionRequest"]["id"]
        assert stack.post_webhook(body).status_code == 202
        stack.wait_state(request_id, "reported")
        wait_until(lambda: '"state": "reported"' in worker.log(tail=10**7), 10)
        lines = []
        for proc in stack.procs:
            for line in proc.log(tail=10**7).splitlines():
                if line.startswith("{") and request_id in line:
                    lines.append(json.loads(line))
        states = [line["state"] for line in lines if line.get("logger") == "fulfillment.state"]
        assert states == ["queued", "provisioning", "provisioned", "reported"], lines
        for line in lines:
            if line.get("logger") == "fulfillment.state":
                assert line["request_id"] == request_id
                assert line["attempt_id"] == body["provisionAttempt"]["id"]
                assert line["request_type"] == "NetNew"
                assert line["simulation"] is False
        # Every process says first which version of what started.
        version = importlib.metadata.version("pax8-fulfillment")
        for proc in (stack.procs[0], worker):
            starts = [json.loads(line) for line in proc.log(tail=10**7).splitlines()
                      if line.startswith("{") and "starting (pid" in line]  # fmt: skip
            assert starts, proc.describe()
            assert starts[0]["message"].startswith(f"pax8-fulfillment {version}: ")
            assert starts[0]["message"].endswith(
                f"; ledger schema {LEDGER_SCHEMA}, message format {MESSAGE_FORMAT})"
            )
    finally:
        worker.stop()


def test_flower_from_the_procfile_shows_workers_and_orders(stack: Stack, tmp_path: Path) -> None:
    worker = stack.start_worker("worker-flower")
    port = free_port()
    flower = stack.start(
        "flower", "flower", FLOWER_PORT=str(port), FLOWER_UNAUTHENTICATED_API="true"
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        flower.wait_http(f"http://127.0.0.1:{port}/healthcheck", timeout=60)
        workers = wait_until(
            lambda: httpx.get(f"{api}/workers", params={"refresh": "1"}, timeout=10).json(),
            30,
            0.5,
        )
        assert any(name.startswith("worker-") for name in workers)

        def task_for(request_id: str) -> dict[str, Any] | None:
            tasks = httpx.get(f"{api}/tasks", timeout=5).json()
            return next(
                (
                    t
                    for t in tasks.values()
                    if t.get("name") == "fulfillment.net_new" and request_id in str(t.get("args"))
                ),
                None,
            )

        # Workers send task events only while Flower watches (it switches them on every
        # few seconds), so the first orders may pass unseen; a later one must show.
        def an_order_shows() -> dict[str, Any] | None:
            body = stack.sandbox_notification()
            request_id = body["provisionRequest"]["id"]
            assert stack.post_webhook(body).status_code == 202
            stack.wait_state(request_id, "reported")
            try:
                return wait_until(lambda: task_for(request_id), 3, 0.25)
            except AssertionError:
                return None

        task = wait_until(an_order_shows, 40, 0.1, message="no order visible in Flower")
        assert task["state"] == "SUCCESS"
        assert "secret" not in json.dumps(task).lower()
    finally:
        flower.stop()
        worker.stop()


def test_metrics_count_orders_by_state(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    # Never on the webhook port, with the token or without: the route does not exist.
    for headers in ({}, {"Authorization": "Bearer nope"}, auth):
        assert (
            httpx.get(f"{stack.receiver_url}/metrics", headers=headers, timeout=5).status_code
            == 404
        )
    # Beat's exporter serves the ledger's view, read at scrape time, with the token only.
    port = free_port()
    beat = stack.start_beat("beat-metrics", BEAT_METRICS_PORT=str(port))
    try:
        beat.wait_port(port)
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url, timeout=5).status_code == 401
        text = httpx.get(url, headers=auth, timeout=5).text
    finally:
        beat.stop()
    counts = {
        line.split('"')[1]: int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("fulfillment_orders{")
    }
    assert counts == stack.ledger.counts()
    assert counts["reported"] >= 1 and counts["dead"] >= 1
    assert "fulfillment_reconcile_runs_total" in text
