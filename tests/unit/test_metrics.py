"""Metrics in-process: the definitions follow Prometheus' conventions, the domain functions
record what happened, the ledger's view is read at scrape time, the exporter wants its token,
and the settings refuse an exporter or a console beyond loopback without protection."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.test import Client

import fulfillment.runtime.metrics as metrics
from cli.main import main
from config.settings import ConfigError, explicit_settings
from fulfillment.ledger import Ledger
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import State
from fulfillment.names import ALL_QUEUES
from fulfillment.runtime import multiprocess
from fulfillment.runtime.exporter import MetricsApp
from fulfillment.views.ledger_metrics import LedgerCollector
from fulfillment.workflow.provisioning import fulfil
from tests.unit.conftest import Pax8World, ServicesFactory, make_settings
from tests.unit.test_console import record
from tests.unit.test_fulfilment import order_at_pax8, scripted
from vendors.base import Provisioned
from vendors.errors import TransientVendorError


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_metric_follows_the_conventions() -> None:
    defined = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    assert len(defined) == 10
    for metric in defined:
        name = metric._name  # noqa: SLF001 - the library keeps it there
        assert name.startswith("fulfillment_")
        # Labelled, so no storage exists before a process chose single or multi-process mode.
        assert metric._labelnames, name  # noqa: SLF001
        assert not {"id", "request_id", "attempt_id"} & set(metric._labelnames)  # noqa: SLF001
        if metric._type == "histogram":  # noqa: SLF001
            assert name.endswith("_seconds"), name
        text = generate_latest(REGISTRY).decode()
        assert f"# HELP {name}" in text or f"# HELP {name}_total" in text


CALLS = "fulfillment_vendor_calls_total"


def _fulfil_counts() -> dict[str, float]:
    """The samples the fulfilment test watches, now."""
    return {
        "ok": sample(CALLS, type="NetNew", outcome="success", backend="default"),
        "transient": sample(CALLS, type="NetNew", outcome="transient", backend="default"),
        "error": sample(CALLS, type="NetNew", outcome="error", backend="default"),
        "posted": sample("fulfillment_results_posted_total", status="Success"),
        "retries": sample("fulfillment_retries_total", kind="provision"),
        "dead": sample("fulfillment_orders_dead_total", reason="adapter-error"),
        "timed": sample(
            "fulfillment_vendor_call_duration_seconds_count", type="NetNew", backend="default"
        ),
    }


def test_fulfil_counts_vendor_calls_results_retries_and_dead_orders(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    before = _fulfil_counts()
    services = scripted(
        make_services,
        TransientVendorError("busy"),
        Provisioned(subscription_id="s-1"),
        KeyError("bug"),
    )
    request_id, detail_id, _ = order_at_pax8(pax8, services)
    ref = Ref(Scope.PAX8, request_id)
    assert fulfil(services, ref, detail_id, "t-1").next == "retry"
    assert fulfil(services, ref, detail_id, "t-1").state is State.REPORTED
    other, other_detail, _ = order_at_pax8(pax8, services)
    assert fulfil(services, Ref(Scope.PAX8, other), other_detail, "t-2").next == "dead"
    after = _fulfil_counts()
    assert {key: after[key] - before[key] for key in before} == {
        "ok": 1,
        "transient": 1,
        "error": 1,
        "posted": 1,
        "retries": 1,
        "dead": 1,
        "timed": 3,
    }


def families(collector: LedgerCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_the_ledger_collector_reads_states_ages_queues_and_reconciliation(
    make_services: ServicesFactory, redis_url: str
) -> None:
    services = make_services()
    refs = [record(services) for _ in range(3)]
    ledger = services.ledger
    detail = ledger.get(refs[0]).detail_id  # type: ignore[union-attr]
    ledger.claim(refs[0], detail, "t", 60, 5)
    ledger.finish(refs[0], detail, "t", "Success")
    ledger.mark_dead(refs[1], "given up")
    raw = redis.Redis.from_url(redis_url)
    raw.lpush("fulfillment.net_new", "m1", "m2")
    raw.hset("unacked", "tag", "m3")
    ledger.record_reconcile_run({"at": 1000.0, "seconds": 3.0, "enqueued": 4, "rereported": 2,
                                 "errors": ["x"]}, metrics.RECONCILE_BUCKETS)  # fmt: skip
    ledger.record_reconcile_run({"at": 1300.0, "seconds": 0.2, "enqueued": 1},
                                metrics.RECONCILE_BUCKETS)  # fmt: skip
    finished_at = ledger.get(refs[0]).state_at  # type: ignore[union-attr]
    now = time.time() + 60
    found = families(LedgerCollector(Ledger(raw), ALL_QUEUES, 300.0, clock=lambda: now))

    assert found["fulfillment_redis_up"] == {(): 1.0}
    orders = found["fulfillment_orders"]
    assert orders[(("state", "provisioned"),)] == 1 and orders[(("state", "dead"),)] == 1
    assert orders[(("state", "queued"),)] + orders[(("state", "received"),)] == 1
    unreported = found["fulfillment_unreported_oldest_age_seconds"][()]
    assert unreported == pytest.approx(now - finished_at, abs=0.01)
    ages = found["fulfillment_orders_oldest_age_seconds"]
    assert ages[(("state", "provisioned"),)] == pytest.approx(unreported)
    assert ages[(("state", "failed"),)] == 0
    queues = found["fulfillment_queue_messages"]
    assert queues[(("queue", "fulfillment.net_new"),)] == 2
    assert set(queues) == {(("queue", queue),) for queue in ALL_QUEUES}
    assert found["fulfillment_queue_unacked_messages"] == {(): 1.0}
    assert found["fulfillment_reconcile_runs_total"] == {(): 2.0}
    assert found["fulfillment_reconcile_enqueued_total"] == {(): 5.0}
    assert found["fulfillment_reconcile_rereported_total"] == {(): 2.0}
    assert found["fulfillment_reconcile_errors_total"] == {(): 1.0}
    buckets = found["fulfillment_reconcile_duration_seconds_bucket"]
    assert buckets[(("le", "0.5"),)] == 1 and buckets[(("le", "5.0"),)] == 2
    assert buckets[(("le", "+Inf"),)] == 2
    assert found["fulfillment_reconcile_duration_seconds_sum"][()] == pytest.approx(3.2)
    assert found["fulfillment_reconcile_last_run_timestamp_seconds"] == {(): 1300.0}
    assert found["fulfillment_reconcile_interval_seconds"] == {(): 300.0}
    raw.close()


def test_without_redis_a_scrape_still_answers_redis_down() -> None:
    unreachable = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    found = families(LedgerCollector(Ledger(unreachable), ALL_QUEUES, 300.0))
    assert found == {"fulfillment_redis_up": {(): 0.0}}


@pytest.fixture
def exporter() -> Iterator[Client]:
    registry = CollectorRegistry()
    registry.register(_Fixed())
    yield Client(MetricsApp(registry, "s3cret-token"))


class _Fixed:
    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily("fulfillment_test", "A test gauge.", value=7)


def test_the_exporter_wants_the_token_on_metrics_only(exporter: Client) -> None:
    assert exporter.get("/metrics").status_code == 401
    assert exporter.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    wrong = exporter.get("/metrics", headers={"Authorization": "Bearer s3cret-tokeN"})
    assert wrong.status_code == 401
    ok = exporter.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and "fulfillment_test 7.0" in ok.get_data(as_text=True)
    assert exporter.get("/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 404
    post = exporter.post("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert post.status_code == 405
    open_registry = CollectorRegistry()
    open_registry.register(_Fixed())
    assert Client(MetricsApp(open_registry, None)).get("/metrics").status_code == 200


def test_exporters_and_console_beyond_loopback_need_protection(redis_url: str) -> None:
    for role in ("receiver", "worker", "beat"):
        with pytest.raises(ConfigError) as refused:
            make_settings(redis_url, metrics_host="0.0.0.0").require(role)  # type: ignore[arg-type]
        assert refused.value.variable == "METRICS_HOST"
        token = "unit-metrics-t0ken"
        guarded = make_settings(redis_url, metrics_host="0.0.0.0", metrics_token=token)
        guarded.require(role)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as bad_host:
        explicit_settings(metrics_host="metrics.example.com")
    assert bad_host.value.variable == "METRICS_HOST"
    with pytest.raises(ConfigError) as bad_port:
        explicit_settings(web_metrics_port="70000")
    assert bad_port.value.variable == "WEB_METRICS_PORT"


def test_console_users_are_names_and_werkzeug_hashes(redis_url: str) -> None:
    good = generate_password_hash("a long enough password")
    settings = make_settings(redis_url, console_users=f"alice:{good}, bob:{good}")
    assert [user.name for user in settings.console_users] == ["alice", "bob"]
    assert "a long enough" not in repr(settings)
    for entry in ("alice:plaintext-password", "alice", f"al ice:{good}", f"a:{good},a:{good}"):
        with pytest.raises(ConfigError) as refused:
            explicit_settings(console_users=entry)
        assert refused.value.variable == "CONSOLE_USERS"
        assert "plaintext-password" not in str(refused.value)


def test_fulfill_console_user_prints_an_entry_the_settings_accept(redis_url: str) -> None:
    runner = CliRunner()
    done = runner.invoke(
        main, ["console-user", "ops", "--password-stdin"], input="correct horse battery\n"
    )
    assert done.exit_code == 0, done.output
    name, _, password_hash = done.stdout.strip().partition(":")
    assert name == "ops" and check_password_hash(password_hash, "correct horse battery")
    assert "correct horse" not in done.stdout
    assert (
        make_settings(redis_url, console_users=done.stdout.strip()).console_users[0].name == "ops"
    )
    prompted = runner.invoke(
        main, ["console-user", "ops"], input="another good one\nanother good one\n"
    )
    assert prompted.exit_code == 0 and check_password_hash(
        prompted.stdout.strip().rsplit("\n", 1)[-1].partition(":")[2], "another good one"
    )
    short = runner.invoke(main, ["console-user", "ops", "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    bad = runner.invoke(main, ["console-user", "o:ps", "--password-stdin"], input="x" * 20 + "\n")
    assert bad.exit_code == 2


def test_a_killed_parents_metric_directory_is_removed_by_the_next_start(tmp_path: Path) -> None:
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    dead = tmp_path / f"{multiprocess.PREFIX}worker-{dead_pid.pid}-abc"
    alive = tmp_path / f"{multiprocess.PREFIX}worker-{os.getpid()}-def"
    unrelated = tmp_path / f"{multiprocess.PREFIX}notes"
    for path in (dead, alive, unrelated):
        path.mkdir()
    assert multiprocess.remove_stale(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and unrelated.exists()
