"""The doctor's checks as plain functions: real Redis and the sandbox's Pax8 in-process, the
workers and the receiver played by stand-ins (the process tests run the real ones)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from config.version import LEDGER_SCHEMA, __version__
from fulfillment.doctor import store
from fulfillment.doctor.context import Doctor
from fulfillment.doctor.metrics import DoctorCollector
from fulfillment.doctor.pax8_checks import check_receiver, check_webhook, same_url
from fulfillment.doctor.process_checks import check_beat, check_clocks, check_orders
from fulfillment.doctor.redis_checks import check_durability, check_replication, check_schema
from fulfillment.doctor.result import Check, Report, Status
from fulfillment.doctor.run import NAMES, Spec, run_check, run_checks
from fulfillment.intake.notifications import parse_pax8
from fulfillment.ledger.migrations import migrate
from fulfillment.services import Services
from tests.support.stack import notification
from tests.unit.conftest import SIM_SECRET, Pax8World, ServicesFactory

PUBLIC = "https://fulfil.example.test"


class StandInWorkers:
    """Workers that answer what the test says."""

    def __init__(self, clocks: dict[str, float | None], queues: dict[str, list[str]]) -> None:
        self._clocks, self._queues = clocks, queues

    def queues(self, timeout: float) -> dict[str, list[str]]:
        return self._queues

    def clocks(self, timeout: float) -> dict[str, float | None]:
        return self._clocks


def doctor_of(services: Services, workers: Any = None, **kwargs: Any) -> Doctor:
    return Doctor(services.settings, services, workers, **kwargs)


def receiver(status: int, body: dict[str, Any], seen: list[httpx.Request]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_a_report_counts_its_rows_and_reads_back_what_it_wrote() -> None:
    rows = (
        Check("redis", "redis", Status.OK, "answers"),
        Check("clocks", "clocks", Status.WARN, "a bit off", "run NTP"),
        Check("beat", "beat", Status.FAIL, "gone", "start beat"),
    )
    report = Report(rows, 12.5, "1.2.3")
    assert report.counts == {"ok": 1, "warn": 1, "fail": 1}
    assert report.status is Status.FAIL and not report.ok
    again = Report.from_dict(json.loads(json.dumps(report.as_dict())))
    assert again == report
    assert Report(rows[:2], 1.0, "x").ok  # a warning alone does not fail


HOOK = "https://fulfil.example.test/webhooks/pax8"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://Fulfil.example.test:443/webhooks/pax8/", HOOK, True),
        ("http://127.0.0.1:8000/webhooks/pax8", "http://127.0.0.1:8000/webhooks/pax8", True),
        ("http://fulfil.example.test/webhooks/pax8", HOOK, False),
        ("https://old.example.test/webhooks/pax8", HOOK, False),
        ("https://fulfil.example.test/a/webhooks/pax8", HOOK, False),
    ],
)
def test_same_url(a: str, b: str, same: bool) -> None:
    assert same_url(a, b) is same


def test_clocks_fail_beyond_the_bound_and_warn_for_a_silent_worker(
    make_services: ServicesFactory,
) -> None:
    services = make_services()
    seconds, micros = services.redis.time()
    now = int(seconds) + int(micros) / 1e6
    queues: dict[str, list[str]] = {}
    ok = check_clocks(doctor_of(services, StandInWorkers({"w1@a": now + 0.1}, queues)))
    assert ok.status is Status.OK and "1 worker clock(s) within" in ok.detail
    skewed = StandInWorkers({"w1@a": now + 1.0, "w2@b": now - 30.0}, queues)
    bad = check_clocks(doctor_of(services, skewed))
    assert bad.status is Status.FAIL
    assert bad.detail.startswith("the clock of w2@b is 3") and "run NTP" in bad.fix
    silent = check_clocks(doctor_of(services, StandInWorkers({"old@c": None}, queues)))
    assert silent.status is Status.WARN and "old@c did not report a clock" in silent.detail


def test_beat_is_judged_by_its_last_reconciliation(make_services: ServicesFactory) -> None:
    services = make_services(reconcile_interval_seconds=60)
    never = check_beat(doctor_of(services))
    assert never.status is Status.WARN and never.detail.startswith("no reconciliation recorded")
    services.ledger.record_reconcile_run({"at": 1000.0, "seconds": 0.1, "errors": []})
    fresh = check_beat(doctor_of(services, now=lambda: 1000.0 + 100))
    assert fresh.status is Status.OK and "ended 1m ago, every 1m" in fresh.detail
    stale = check_beat(doctor_of(services, now=lambda: 1000.0 + 121))
    assert stale.status is Status.FAIL and "beat is not running" in stale.detail


def test_a_dead_order_fails_the_orders_check(make_services: ServicesFactory) -> None:
    services = make_services()
    assert check_orders(doctor_of(services)).status is Status.OK
    notice, _ = parse_pax8(json.dumps(notification()).encode())
    services.ledger.accept(notice)
    services.ledger.mark_dead(notice.ref, "the adapter raised")
    found = check_orders(doctor_of(services))
    assert found.status is Status.FAIL and found.detail.startswith("1 dead order(s)")
    assert "fulfill replay" in found.fix


def test_aof_off_fails_and_replicas_short_of_the_wait_fail(make_services: ServicesFactory) -> None:
    # The unit tier's Redis runs without AOF.
    services = make_services()
    off = check_durability(doctor_of(services))
    assert off.status is Status.FAIL and off.detail.startswith("AOF is off")
    short = check_replication(doctor_of(make_services(redis_wait_replicas=1)))
    assert short.status is Status.FAIL
    assert "REDIS_WAIT_REPLICAS=1 but the master has 0 connected replica(s)" in short.detail
    single = check_replication(doctor_of(services))
    assert single.status is Status.OK and single.detail.startswith("a single Redis")


def _configure(pax8: Pax8World, url: str, header: str = "pax8ApiTokenV1") -> None:
    body = {"environment": "simulation", "url": url, "credential": SIM_SECRET, "header": header}
    pax8.control("POST", "/webhooks", json=body)


def test_the_webhook_check_names_each_wrong_wire(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services(public_url=PUBLIC)
    missing = check_webhook(doctor_of(services), True)
    assert missing.status is Status.WARN and "no simulation configuration" in missing.detail
    assert missing.fix.startswith(f"fulfill webhooks create {PUBLIC}/webhooks/pax8 --simulation")

    _configure(pax8, f"{PUBLIC}/webhooks/pax8")
    assert check_webhook(doctor_of(services), True).status is Status.OK

    _configure(pax8, f"{PUBLIC}/webhooks/pax8", header="X-Other")
    header = check_webhook(doctor_of(services), True)
    assert header.status is Status.FAIL and "sends its credential in X-Other" in header.detail
    assert header.fix.startswith("set PAX8_WEBHOOK_HEADER=X-Other")

    _configure(pax8, "http://old.example.test/webhooks/pax8")
    elsewhere = check_webhook(doctor_of(services), True)
    assert elsewhere.status is Status.FAIL
    assert "delivers to http://old.example.test/webhooks/pax8, not to PUBLIC_URL" in (
        elsewhere.detail
    )
    plain = check_webhook(doctor_of(make_services(public_url="http://old.example.test")), True)
    assert plain.status is Status.WARN and "Pax8 sends the credential in clear" in plain.detail


def test_the_receiver_probe_goes_to_public_url_only(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = make_services(public_url=PUBLIC)
    _configure(pax8, f"{PUBLIC}/webhooks/pax8")
    seen: list[httpx.Request] = []
    good = receiver(400, {"error": "missing", "field": "provisionRequest"}, seen)
    found = check_receiver(doctor_of(services, http=good), True)
    assert found.status is Status.OK and "nothing recorded" in found.detail
    (probe,) = seen
    assert str(probe.url) == f"{PUBLIC}/webhooks/pax8" and probe.content == b"{}"
    assert probe.headers["pax8ApiTokenV1"] == SIM_SECRET

    refused = check_receiver(doctor_of(services, http=receiver(401, {}, seen)), True)
    assert refused.status is Status.FAIL and "refuses the credential Pax8 sends" in refused.detail
    assert SIM_SECRET not in refused.detail  # masked

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    gone = httpx.Client(transport=httpx.MockTransport(down))
    assert check_receiver(doctor_of(services, http=gone), True).status is Status.FAIL

    # Pax8 delivering elsewhere: the probe (with the credential) still goes to PUBLIC_URL
    # only, never to a URL read from Pax8; without PUBLIC_URL nothing is probed at all.
    _configure(pax8, "https://someone-else.example.test/webhooks/pax8")
    seen.clear()
    check_receiver(doctor_of(services, http=receiver(400, {"field": "x"}, seen)), True)
    assert [str(r.url) for r in seen] == [f"{PUBLIC}/webhooks/pax8"]
    seen.clear()
    other = check_receiver(doctor_of(make_services(), http=receiver(400, {}, seen)), True)
    assert other.status is Status.WARN and "PUBLIC_URL is not set" in other.detail
    assert seen == []


def test_a_broken_check_is_its_own_fail_and_no_secret_leaves(
    make_services: ServicesFactory,
) -> None:
    services = make_services()

    def leaky(doctor: Doctor) -> Any:
        raise RuntimeError(f"boom with {SIM_SECRET}")

    def redis_down(doctor: Doctor) -> Any:
        raise redis.ConnectionError("Connection refused")

    broken = run_check(doctor_of(services), Spec("x", "x", leaky))
    assert broken.status is Status.FAIL and broken.detail.startswith("the check itself failed")
    down = run_check(doctor_of(services), Spec("y", "y", redis_down))
    assert down.detail.startswith("not checked: Redis does not answer")

    report = run_checks(doctor_of(services, StandInWorkers({}, {})))
    assert [c.name for c in report.checks] == list(NAMES)
    assert SIM_SECRET not in json.dumps(report.as_dict())


def test_the_collector_serves_the_stored_report(make_services: ServicesFactory) -> None:
    services = make_services()
    collect: Callable[[], dict[str, Any]] = lambda: {  # noqa: E731
        (s.name, s.labels.get("check", "")): s.value
        for family in DoctorCollector(services.ledger, 300.0).collect()
        for s in family.samples
    }
    assert collect() == {("fulfillment_doctor_interval_seconds", ""): 300.0}
    rows = (
        Check("redis", "redis", Status.OK, ""),
        Check("beat", "beat", Status.FAIL, ""),
        Check("not-a-check\n", "forged", Status.FAIL, ""),
    )
    store.save(services.ledger, Report(rows, 42.0, "v"))
    assert collect() == {
        ("fulfillment_doctor_interval_seconds", ""): 300.0,
        ("fulfillment_doctor_check_status", "redis"): 0.0,
        ("fulfillment_doctor_check_status", "beat"): 2.0,
        ("fulfillment_doctor_last_run_timestamp_seconds", ""): 42.0,
    }
    services.redis.set(services.ledger.keys.doctor_last, "not json")
    assert store.load(services.ledger) is None


def test_the_ledger_schema_check_says_what_this_release_can_run_on(
    make_services: ServicesFactory,
) -> None:
    services = make_services()
    doctor = doctor_of(services)
    empty = check_schema(doctor)
    assert empty.status is Status.OK and empty.detail.startswith("empty;")
    services.redis.hset("ff:req:pax8:r1", mapping={"id": "r1", "state": "reported"})
    unstamped = check_schema(doctor)  # 0.1.0's data: the next process stamps it
    assert unstamped.status is Status.WARN and "data of 0.1.0" in unstamped.detail
    migrate(services.ledger)
    current = check_schema(doctor)
    assert current.status is Status.OK
    assert current.detail == (
        f"schema {LEDGER_SCHEMA} (stamped by {__version__}); "
        f"this release reads up to schema {LEDGER_SCHEMA}"
    )
    services.redis.hset("ff:schema", mapping={"version": LEDGER_SCHEMA + 1, "release": "9.0.0"})
    newer = check_schema(doctor)  # a downgrade: every process of this release refuses
    assert newer.status is Status.FAIL and "refuse to start" in newer.detail
    assert "restore the backup" in newer.fix
