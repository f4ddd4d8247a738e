"""Every Redis user on Redis Sentinel, with passwords: processes, the CLI, Flower and logs.

A master and a replica with ``requirepass``, three sentinels with a password of their own
(:class:`~tests.support.sentinel.SentinelStack`; ``REDIS_URL`` points at a closed port).
An order goes webhook → receiver → worker → result through the sentinels; ``fulfill``
reads the ledger through them; Flower shows the broker and the worker; and neither
password appears in any process's output or any page Flower serves. The failovers are
the fault suite's (``tests/faults/test_failover_faults.py``).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.redis_server import free_port
from tests.support.procs import Proc, procfile_command, wait_until
from tests.support.sentinel import SentinelStack
from tests.support.vendor_stub import VendorStub
from tests.test_cli import fulfill, ok

REDIS_PASSWORD = "Redis-Pass-4f1b"
SENTINEL_PASSWORD = "Sentinel-Pass-9c2e"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelStack]:
    # The http adapter: the example vendor keeps its own data at REDIS_URL (it is a vendor,
    # not a user of the worker's Redis), which points nowhere here.
    with VendorStub() as vendor:
        running = SentinelStack(
            tmp_path_factory.mktemp("sentinel"),
            password=REDIS_PASSWORD,
            sentinel_password=SENTINEL_PASSWORD,
            env={
                "LOG_LEVEL": "DEBUG",  # the most a process says: still no password
                "VENDOR_ADAPTER": "http",
                "VENDOR_HTTP_URL": vendor.url,
            },
        )
        try:
            running.start_receiver()
            running.start_worker()
            yield running
        finally:
            running.stop()


WORKER = re.compile(r"worker-\d+@[\w.-]+")


def page_of(url: str) -> str:
    """A Flower page's HTML ('' until it answers 200)."""
    response = httpx.get(url, timeout=30)
    return response.text if response.status_code == 200 else ""


def no_password(text: str) -> bool:
    lowered = text.lower()
    return REDIS_PASSWORD.lower() not in lowered and SENTINEL_PASSWORD.lower() not in lowered


def test_an_order_goes_through_the_sentinels(stack: SentinelStack) -> None:
    body = stack.sandbox_notification()
    request_id = body["provisionRequest"]["id"]
    assert stack.post_webhook(body).status_code == 202
    stack.wait_state(request_id, "reported")
    assert len(stack.sandbox.results(request_id=request_id)) == 1
    # fulfill reads the same ledger through the sentinels.
    assert '"state": "reported"' in ok(fulfill(stack, "status", request_id, "--json"))


def test_flower_shows_the_broker_and_the_worker_without_a_password(
    stack: SentinelStack,
) -> None:
    port = free_port()
    flower = stack.start("flower", "flower-sentinel", FLOWER_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        flower.wait_http(f"{base}/healthcheck", timeout=60)
        broker = wait_until(lambda: page_of(f"{base}/broker"), 30, 0.5)
        assert "fulfillment.net_new" in broker  # it listed the master's queues
        assert "sentinel://:**@" in broker  # the broker URL, its password masked
        worker_name = wait_until(
            lambda: (found := WORKER.search(page_of(f"{base}/workers"))) and found.group(0),
            30,
            0.5,
        )
        worker = page_of(f"{base}/worker/{worker_name}")
        assert "broker_transport_options" in worker  # its configuration, censored by Celery
        for text in (broker, worker):
            assert no_password(text)
    finally:
        flower.stop()
    assert no_password(flower.log(tail=10_000_000))


def test_no_process_writes_either_password(stack: SentinelStack) -> None:
    # What test_an_order_goes_through_the_sentinels made them log, at DEBUG.
    for proc in stack.procs:
        assert no_password(proc.log(tail=10_000_000)), proc.name


def test_doctor_checks_the_quorum_and_the_replicas_through_the_sentinels(
    stack: SentinelStack,
) -> None:
    result = fulfill(stack, "doctor", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)["checks"]}
    assert rows["redis"]["status"] == "ok", rows["redis"]
    assert "the master 'ff-master' of REDIS_SENTINELS=" in rows["redis"]["detail"]
    replication = rows["redis_replication"]
    assert replication["status"] == "ok", replication
    assert replication["detail"].startswith("3 of 3 sentinels reach the quorum of 'ff-master'")
    assert "1 replica(s), REDIS_WAIT_REPLICAS=0" in replication["detail"]
    assert rows["queues"]["status"] == "ok" and rows["clocks"]["status"] == "ok"

    wanting = fulfill(stack, "doctor", "--json", REDIS_WAIT_REPLICAS="2")
    assert wanting.returncode == 1
    rows = {row["name"]: row for row in json.loads(wanting.stdout)["checks"]}
    assert rows["redis_replication"]["status"] == "fail"
    assert rows["redis_replication"]["detail"].startswith(
        "REDIS_WAIT_REPLICAS=2 but the master has 1 connected replica(s)"
    )
    assert no_password(result.stdout + result.stderr + wanting.stdout + wanting.stderr)


def test_without_the_sentinels_the_cli_names_them(stack: SentinelStack) -> None:
    closed = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    result = fulfill(stack, "status", REDIS_SENTINELS=closed)
    assert result.returncode == 3, result
    assert f"REDIS_SENTINELS={closed}" in result.stderr and "'ff-master'" in result.stderr
    assert no_password(result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("line", "env", "variable"),
    [
        ("web", {"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
        ("worker", {"REDIS_SENTINEL_MASTER": "ff-master"}, "REDIS_SENTINELS"),
        ("beat", {"REDIS_SENTINELS": "127.0.0.1", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ("web", {"REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "5000"},
         "REDIS_WAIT_TIMEOUT_MS"),
        ("flower", {"REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD}, "REDIS_SENTINEL_PASSWORD"),
    ],
)  # fmt: skip
def test_a_bad_combination_stops_each_process_naming_the_setting(
    tmp_path: Path, line: str, env: dict[str, str], variable: str
) -> None:
    environment = {
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PAX8_CLIENT_ID": "id",
        "PAX8_CLIENT_SECRET": "sentinel-client-secret",
        "PAX8_WEBHOOK_SECRETS": "sentinel-webhook-secret-one",
        "PORT": "18998",
        "BEAT_SCHEDULE_FILE": str(tmp_path / "schedule"),
        **env,
    }
    proc = Proc(line, procfile_command(line), environment, tmp_path)
    try:
        code = proc.popen.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{line} kept running with a bad {variable}\n{proc.describe()}")
    finally:
        proc.stop()
    assert code != 0
    errors = [x for x in proc.log().splitlines() if "configuration error" in x]
    assert len(errors) == 1, proc.log()
    assert errors[0].startswith(f"fulfillment: configuration error: {variable}: ")
    assert no_password(proc.log())
