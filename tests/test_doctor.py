"""``fulfill doctor`` against a real stack: green when every wire is right, and red with the
right row for each break staged on it.

The stack (redis-server with AOF, the sandbox playing Pax8 with both webhook configurations
pointing at the receiver, gunicorn, one celery worker, celery beat) is what an operator runs;
each test breaks one wire the way it breaks in real life (a credential not deployed, a
configuration created for another host, Redis restarted without AOF, a worker started with
too narrow a ``-Q``, beat gone, a vendor endpoint without auth), runs the command as a user
does, checks that exactly the expected rows fail, and mends the wire. Beat also runs the
checks on its schedule: its exporter serves them, promtool checks the exposition, and the
alert rule fires on what it served.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cli.redis_server import free_port
from fulfillment.doctor.run import NAMES
from fulfillment.names import ALL_QUEUES
from tests.support.procs import Proc, procfile_command, wait_until
from tests.support.stack import SIM_SECRET, Stack
from tests.support.vendor_stub import VendorStub
from tests.test_cli import fulfill

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
INTERVAL = 3  # RECONCILE_INTERVAL_SECONDS: beat is "dead" 2 intervals after its last run
DOCTOR_INTERVAL = 4


class Deployment:
    """The stack and the processes a test may stop and start again."""

    def __init__(self, stack: Stack, beat_port: int) -> None:
        self.stack = stack
        self.beat_port = beat_port
        self.worker: Proc | None = None
        self.beat: Proc | None = None

    def doctor(self, **env: str) -> tuple[int, dict[str, dict[str, str]], dict[str, Any]]:
        """``fulfill doctor --json`` with the stack's settings (plus ``env``): exit code,
        rows by name, the whole report."""
        result = fulfill(self.stack, "doctor", "--json", **env)
        assert result.returncode in (0, 1), result.stdout + result.stderr
        report = json.loads(result.stdout)
        return result.returncode, {row["name"]: row for row in report["checks"]}, report

    def failing(self, **env: str) -> dict[str, dict[str, str]]:
        """The rows that fail, and exit 1 when some do."""
        code, rows, _ = self.doctor(**env)
        bad = {name: row for name, row in rows.items() if row["status"] == "fail"}
        assert code == (1 if bad else 0), rows
        return bad

    def scrape(self) -> str:
        response = httpx.get(f"http://127.0.0.1:{self.beat_port}/metrics", timeout=10)
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("doctor")
    beat_port = free_port()
    stack = Stack(
        tmp,
        env={
            "RECONCILE_INTERVAL_SECONDS": str(INTERVAL),
            "DOCTOR_INTERVAL_SECONDS": str(DOCTOR_INTERVAL),
        },
    )
    stack.env["PUBLIC_URL"] = stack.receiver_url
    out = Deployment(stack, beat_port)
    try:
        stack.start_receiver()
        out.worker = stack.start_worker()
        out.beat = stack.start_beat(BEAT_METRICS_PORT=str(beat_port))
        wait_until(lambda: stack.ledger.reconcile_runs()[0] >= 1, 30, 0.2,
                   message=lambda: "no reconciliation\n" + stack.describe())  # fmt: skip
        yield out
    finally:
        stack.stop()


def test_doctor_is_green_on_a_healthy_stack(deployment: Deployment) -> None:
    result = fulfill(deployment.stack, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    assert not [line for line in lines if "fix:" in line]  # nothing to fix
    assert lines[-1] == f"{len(NAMES)} checks: {len(NAMES)} ok, 0 warn, 0 fail."

    code, rows, report = deployment.doctor()
    assert code == 0 and report["ok"] and report["status"] == "ok"
    assert list(rows) == list(NAMES)
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(NAMES, "ok")
    stack = deployment.stack
    assert "AOF on, appendfsync everysec" in rows["redis_durability"]["detail"]
    assert f"delivers to {stack.receiver_url}/webhooks/pax8" in rows["webhook_simulation"]["detail"]
    assert "got 400 naming the field; nothing recorded" in rows["receiver_production"]["detail"]
    assert f"1 worker(s) consume all {len(ALL_QUEUES)} queues" in rows["queues"]["detail"]
    assert "worker clock(s) within" in rows["clocks"]["detail"]
    # The probes recorded nothing, and no secret is printed anywhere.
    assert stack.ledger.counts()["received"] == 0
    assert SIM_SECRET not in json.dumps(report) and "test-production-secret" not in result.stdout


def test_a_wrong_webhook_secret_fails_the_webhook_row(deployment: Deployment) -> None:
    bad = deployment.failing(PAX8_SIMULATION_WEBHOOK_SECRETS="not-the-credential-pax8-sends")
    assert set(bad) == {"webhook_simulation"}
    row = bad["webhook_simulation"]
    assert "is not in PAX8_SIMULATION_WEBHOOK_SECRETS: every delivery gets 401" in row["detail"]
    assert row["fix"].startswith("put that configuration's credential in PAX8_SIMULATION_")
    assert "not-the-credential" not in json.dumps(bad)


def test_a_receiver_started_without_the_credential_fails_the_receiver_row(
    deployment: Deployment,
) -> None:
    """Pax8 and the doctor's settings agree, but the receiver deployed at PUBLIC_URL was
    started with another credential: only the probe can tell."""
    stack = deployment.stack
    port = free_port()
    other = f"http://127.0.0.1:{port}"
    receiver = stack.start("web", "web-stale", PORT=str(port), BIND_HOST="127.0.0.1",
                           PAX8_SIMULATION_WEBHOOK_SECRETS="an-old-credential")  # fmt: skip
    try:
        receiver.wait_http(f"{other}/healthz")
        stack.sandbox.create_webhook(f"{other}/webhooks/pax8", "simulation", SIM_SECRET)
        bad = deployment.failing(PUBLIC_URL=other)
        # Production's configuration still points at the first receiver.
        assert set(bad) == {"receiver_simulation", "webhook_production"}
        row = bad["receiver_simulation"]
        assert f"the receiver at {other}/webhooks/pax8 refuses the credential" in row["detail"]
        assert row["fix"].startswith("restart the receiver with PAX8_SIMULATION_WEBHOOK_SECRETS")
    finally:
        stack.sandbox.create_webhook(f"{stack.receiver_url}/webhooks/pax8", "simulation",
                                     SIM_SECRET)  # fmt: skip
        receiver.stop()
    assert deployment.failing() == {}


def test_a_webhook_pointing_elsewhere_fails_the_webhook_row(deployment: Deployment) -> None:
    stack = deployment.stack
    elsewhere = f"http://127.0.0.1:{free_port()}/webhooks/pax8"
    created = fulfill(stack, "webhooks", "create", elsewhere, "--simulation", "--json")
    assert created.returncode == 0, created.stderr
    try:
        bad = deployment.failing()
        assert set(bad) == {"webhook_simulation"}
        detail = bad["webhook_simulation"]["detail"]
        assert (
            f"delivers to {elsewhere}, not to PUBLIC_URL ({stack.receiver_url}/webhooks/pax8)"
            in (detail)
        )
        assert bad["webhook_simulation"]["fix"].startswith(
            f"fulfill webhooks create {stack.receiver_url}/webhooks/pax8 --simulation"
        )
    finally:
        stack.sandbox.create_webhook(f"{stack.receiver_url}/webhooks/pax8", "simulation",
                                     SIM_SECRET)  # fmt: skip
    assert deployment.failing() == {}


def _doctor_samples(text: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fulfillment_doctor_check_status":
                out[sample.labels["check"]] = sample.value
            elif sample.name.startswith("fulfillment_doctor_"):
                out[sample.name] = sample.value
    return out


def test_redis_without_aof_fails_and_the_scheduled_doctor_alerts(
    deployment: Deployment, tmp_path: Path
) -> None:
    stack = deployment.stack
    client = stack.redis()
    client.config_set("appendonly", "no")
    try:
        bad = deployment.failing()
        assert set(bad) == {"redis_durability"}
        assert bad["redis_durability"]["detail"].startswith("AOF is off")
        assert bad["redis_durability"]["fix"].startswith("CONFIG SET appendonly yes")

        # Beat's schedule runs the same checks on a worker; its exporter serves them.
        started = wait_until(lambda: _doctor_samples(deployment.scrape()).get(
            "fulfillment_doctor_last_run_timestamp_seconds"), 30, 0.2)  # fmt: skip

        def failing_run() -> dict[str, float] | None:
            found = _doctor_samples(deployment.scrape())
            newer = found.get("fulfillment_doctor_last_run_timestamp_seconds", 0) > started
            return found if newer and found.get("redis_durability") == 2 else None

        samples = wait_until(failing_run, 4 * DOCTOR_INTERVAL + 10, 0.3,
                             message=lambda: deployment.scrape())  # fmt: skip
    finally:
        client.config_set("appendonly", "yes")
    text = deployment.scrape()
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    assert samples["fulfillment_doctor_interval_seconds"] == DOCTOR_INTERVAL
    assert {name for name in samples if not name.startswith("fulfillment_")} == set(NAMES)
    assert samples["redis_durability"] == 2 and samples["redis"] == 0
    # Run inside a worker, the checks still reach every worker (its own main process too).
    assert samples["queues"] == 0 and samples["clocks"] == 0 and samples["receiver_simulation"] == 0

    # The alert rule fires on exactly what the exporter served (as Prometheus would see
    # it for 20 minutes), naming the check, and stays quiet on a green run.
    series = [
        {"series": f'fulfillment_doctor_check_status{{check="{name}",job="fulfillment-beat"}}',
         "values": f"{int(value)}x20"}
        for name, value in samples.items() if not name.startswith("fulfillment_")
    ]  # fmt: skip
    expected = {
        "exp_labels": {"severity": "page", "check": "redis_durability"},
        "exp_annotations": {
            "summary": "fulfill doctor: the redis_durability check fails",
            "description": _rule("FulfillmentDoctorFailing")["annotations"]["description"],
        },
    }
    tests = {
        "rule_files": [str(ROOT / "deploy" / "prometheus" / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "FulfillmentDoctorFailing",
                     "exp_alerts": []},
                    {"eval_time": "15m", "alertname": "FulfillmentDoctorFailing",
                     "exp_alerts": [expected]},
                ],
            }
        ],
    }  # fmt: skip
    path = tmp_path / "doctor_alert_test.yml"
    path.write_text(yaml.safe_dump(tests))
    tested = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert deployment.failing() == {}


def _rule(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return next(r for g in document["groups"] for r in g["rules"] if r.get("alert") == name)


def test_a_vendor_that_accepts_calls_without_a_token_fails_the_vendor_row(
    deployment: Deployment,
) -> None:
    with VendorStub(token=None) as careless, VendorStub(token="vendor-token") as careful:
        env = {"VENDOR_ADAPTER": "http", "VENDOR_HTTP_TOKEN": "vendor-token"}
        bad = deployment.failing(VENDOR_HTTP_URL=careless.url, **env)
        assert set(bad) == {"vendor"}
        assert (
            f"{careless.url} accepted an order without the token (200)" in bad["vendor"]["detail"]
        )
        _, rows, _ = deployment.doctor(VENDOR_HTTP_URL=careful.url, **env)
        assert rows["vendor"]["status"] == "ok"
        assert "refuses a call without the token (401)" in rows["vendor"]["detail"]
        # The probe carried no token, and sent nothing with one.
        assert all(
            "authorization" not in {k.lower() for k in call.headers} for call in careful.calls
        )


def test_a_queue_without_a_consumer_fails_the_queues_row(deployment: Deployment) -> None:
    stack = deployment.stack
    assert deployment.worker is not None
    deployment.worker.stop()
    narrow = ",".join(q for q in ALL_QUEUES if q != "fulfillment.renewal")
    command = f"{procfile_command('worker')} -Q {narrow}"
    worker = Proc("worker-narrow", command, {**stack.env, "PORT": str(free_port())}, stack.tmp_path)
    stack.procs.append(worker)
    worker.wait_log("ready.", timeout=60)
    try:
        bad = deployment.failing()
        assert set(bad) == {"queues"}
        assert bad["queues"]["detail"].startswith(
            "no worker consumes fulfillment.renewal: those orders wait forever"
        )
    finally:
        worker.stop()
        deployment.worker = stack.start_worker()
    # Green again once the full worker consumes and beat's next reconciliation ran.
    wait_until(lambda: deployment.failing() == {}, 6 * INTERVAL + 20, 1.0,
               message=lambda: json.dumps(deployment.failing()))  # fmt: skip


def test_beat_stopped_fails_the_beat_row(deployment: Deployment) -> None:
    stack = deployment.stack
    assert deployment.beat is not None
    deployment.beat.stop()
    _, last = stack.ledger.reconcile_runs()
    assert last is not None

    def stale() -> dict[str, dict[str, str]] | None:
        bad = deployment.failing()
        return bad if "beat" in bad else None

    bad = wait_until(stale, 6 * INTERVAL + 30, 1.0)
    assert set(bad) == {"beat"}
    assert "beat is not running" in bad["beat"]["detail"]
    assert bad["beat"]["fix"].startswith("start beat (one per deployment, Procfile beat)")
