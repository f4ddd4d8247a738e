"""The alert rules and the dashboard (``deploy/``): promtool checks and unit-tests the rules,
every alert is tested firing and quiet, the example scrape configuration is valid, and every
expression of the rules and of the Grafana dashboard names only metrics the code exports
(and parses as PromQL)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

import fulfillment.runtime.metrics  # noqa: F401 - registers the in-process metrics
from cli.redis_server import RedisServer
from fulfillment.doctor import store as doctor_store
from fulfillment.doctor.metrics import DoctorCollector
from fulfillment.doctor.result import Check, Report, Status
from fulfillment.ledger import Ledger
from fulfillment.names import ALL_QUEUES
from fulfillment.usage.metrics import UsageCollector
from fulfillment.usage.store import UsageStore
from fulfillment.views.ledger_metrics import LedgerCollector
from tests.support.procs import ROOT

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "fulfillment.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
NAME = re.compile(r"\bfulfillment_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Every sample name the processes export: the in-process metrics, the ledger's and the
    scheduled doctor's."""
    server = RedisServer(tmp_path_factory.mktemp("monitoring-redis"), appendonly=False).start()
    client = redis.Redis.from_url(server.url)
    try:
        ledger = Ledger(client)
        ledger.record_reconcile_run({"at": 1.0, "seconds": 0.5})
        check = Check("redis", "redis", Status.OK, "answers")
        doctor_store.save(ledger, Report((check,), 1.0, "test"))
        families: list[Metric] = [
            *(f for f in REGISTRY.collect() if f.name.startswith("fulfillment_")),
            *LedgerCollector(ledger, ALL_QUEUES, 300.0).collect(),
            *UsageCollector(UsageStore(client)).collect(),
            *DoctorCollector(ledger, 300.0).collect(),
        ]
        names = {f.name + suffix for f in families for suffix in SUFFIXES[f.type]}
        yield names
    finally:
        client.close()
        server.stop()


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    tested = promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    names = {rule["alert"] for rule in rules()}
    assert names >= {
        "FulfillmentDeadOrders",
        "FulfillmentUnreportedOutcomes",
        "FulfillmentQueueBacklogGrowing",
        "FulfillmentOrdersWaiting",
        "FulfillmentReconcileMissing",
        "FulfillmentWebhook5xx",
        "FulfillmentVendorErrors",
        "FulfillmentUsageOverdue",
        "FulfillmentDoctorFailing",
        "FulfillmentDoctorStale",
    }
    assert {name: cases.get(name, set()) for name in names} == {n: {True, False} for n in names}
    for rule in rules():
        assert rule["labels"]["severity"] in {"page", "warn"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_example_scrape_configuration_is_valid(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-metrics-token\n")
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert config.count("/etc/prometheus/fulfillment-metrics-token") == 3
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/fulfillment-metrics-token", str(token))
    )
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    checked = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"] for job in yaml.safe_load(config)["scrape_configs"]}
    assert jobs == {"fulfillment-web", "fulfillment-worker", "fulfillment-beat"}


def test_rules_and_dashboard_name_only_exported_metrics(exported: set[str]) -> None:
    used = {
        name
        for expr in [rule["expr"] for rule in rules()] + dashboard_expressions()
        for name in NAME.findall(expr)
    }
    assert used, "no expression names a metric"
    assert used - exported == set()
    # The dashboard shows every kind of figure the issue asks for.
    for wanted in (
        "fulfillment_webhooks_total",
        "fulfillment_webhook_duration_seconds_bucket",
        "fulfillment_vendor_calls_total",
        "fulfillment_vendor_call_duration_seconds_bucket",
        "fulfillment_results_posted_total",
        "fulfillment_retries_total",
        "fulfillment_orders_dead_total",
        "fulfillment_orders",
        "fulfillment_unreported_oldest_age_seconds",
        "fulfillment_queue_messages",
        "fulfillment_reconcile_runs_total",
        "fulfillment_reconcile_duration_seconds_bucket",
        "fulfillment_reconcile_enqueued_total",
        "fulfillment_reconcile_rereported_total",
    ):
        assert any(wanted in expr for expr in dashboard_expressions()), wanted


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    expressions = dashboard_expressions()
    recording = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": expr}
                    for i, expr in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(recording))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
