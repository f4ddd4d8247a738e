"""High availability in-process: the Sentinel and WAIT settings, the broker's Sentinel
configuration, claim tokens, and durable transitions against a real master and replica.

The failovers themselves (a master killed, a planned switch) and the several-host faults
run with real processes in ``tests/faults/test_failover_faults.py`` and
``tests/faults/test_host_faults.py``; here each mechanism is checked on its own, in
seconds: a replica frozen with SIGSTOP stands in for one that does not confirm.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kombu.utils import json as kombu_json

from cli.redis_server import RedisServer, SentinelServer
from config.scrub import Scrubber
from config.settings import ConfigError, explicit_settings
from fulfillment.ledger import Ledger, Notice
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import State
from fulfillment.runtime.clients import NotReplicated, RedisUse, redis_client, redis_location
from fulfillment.services import Services
from fulfillment.workflow.outcomes import Next
from fulfillment.workflow.provisioning import fulfil, provision
from receiver.app import create_app
from tests.support.procs import wait_until
from tests.support.publisher import RecordingPublisher
from tests.support.stack import notification
from tests.unit.conftest import PROD_SECRET, Pax8World, ServicesFactory, make_settings
from tests.unit.test_fulfilment import One, order_at_pax8
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.errors import TransientVendorError
from worker.config import celery_config
from worker.services import build_services

MASTER = "unit-master"

# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"redis_sentinels": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"redis_sentinel_master": "m1"}, "REDIS_SENTINELS"),
        ({"redis_sentinels": "127.0.0.1", "redis_sentinel_master": "m1"}, "REDIS_SENTINELS"),
        ({"redis_sentinels": "h:0", "redis_sentinel_master": "m1"}, "REDIS_SENTINELS"),
        ({"redis_sentinels": "h:99999", "redis_sentinel_master": "m1"}, "REDIS_SENTINELS"),
        ({"redis_sentinels": "a/b:26379", "redis_sentinel_master": "m1"}, "REDIS_SENTINELS"),
        ({"redis_sentinels": "h:1", "redis_sentinel_master": "m 1"}, "REDIS_SENTINEL_MASTER"),
        ({"redis_sentinel_password": "sentinel-pass"}, "REDIS_SENTINEL_PASSWORD"),
        ({"redis_wait_replicas": "-1"}, "REDIS_WAIT_REPLICAS"),
        ({"redis_wait_replicas": "one"}, "REDIS_WAIT_REPLICAS"),
        ({"redis_wait_timeout_ms": "0"}, "REDIS_WAIT_TIMEOUT_MS"),
        ({"redis_wait_replicas": "1", "redis_wait_timeout_ms": "2000"}, "REDIS_WAIT_TIMEOUT_MS"),
    ],
)
def test_a_bad_high_availability_setting_is_named(values: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        explicit_settings(**values)
    assert caught.value.variable == variable


def test_sentinel_settings_parse_and_defaults_match_the_design() -> None:
    default = explicit_settings()
    assert (default.redis_sentinels, default.redis_sentinel_master) == ([], None)
    assert (default.redis_wait_replicas, default.redis_wait_timeout_ms) == (0, 500)
    settings = explicit_settings(
        redis_sentinels=" 10.0.0.1:26379, sentinel-b:26380,[::1]:26381 ",
        redis_sentinel_master="mymaster",
    )
    assert settings.redis_sentinels == [
        ("10.0.0.1", 26379),
        ("sentinel-b", 26380),
        ("::1", 26381),
    ]
    where = redis_location(settings)
    assert "'mymaster'" in where and "[::1]:26381" in where


def test_the_broker_follows_the_sentinels_with_no_password_in_its_url() -> None:
    settings = explicit_settings(
        redis_url="rediss://:Redis-Pass-1@ignored:6379/3?ssl_cert_reqs=none",
        redis_sentinels="10.0.0.1:26379,10.0.0.2:26379",
        redis_sentinel_master="mymaster",
        redis_sentinel_password="Sentinel-Pass-1",
    )
    conf = celery_config(settings)
    assert conf["broker_url"] == "sentinel://10.0.0.1:26379/3;sentinel://10.0.0.2:26379/3"
    assert conf["broker_password"] == "Redis-Pass-1"
    options = conf["broker_transport_options"]
    assert options["master_name"] == "mymaster"
    credentials = options["sentinel_kwargs"]["credential_provider"]
    assert credentials.get_credentials() == ("Sentinel-Pass-1",)
    # Transport options reach Celery's inspect replies (JSON) and Flower: never in clear.
    shown = kombu_json.dumps(conf["broker_transport_options"]) + repr(options)
    assert "Sentinel-Pass-1" not in shown and "[Filtered]" in shown
    assert options["sentinel_kwargs"]["ssl_cert_reqs"] == "none"  # the sentinels speak TLS too
    assert conf["broker_use_ssl"] == {"ssl_cert_reqs": "none"}
    # Both passwords are scrubbed from logs and Sentry by value.
    scrubbed = Scrubber.from_settings(settings).text("Redis-Pass-1 / Sentinel-Pass-1")
    assert "Pass-1" not in scrubbed
    plain = explicit_settings(redis_url="redis://127.0.0.1:6379/0")
    assert celery_config(plain)["broker_url"] == "redis://127.0.0.1:6379/0"
    assert "broker_use_ssl" not in celery_config(plain)


# -- claim tokens ---------------------------------------------------------------------------


def pax8_ref(request_id: str) -> Ref:
    return Ref(Scope.PAX8, request_id)


def test_a_redelivery_takes_the_claim_over_with_its_own_token(redis_url: str) -> None:
    ledger = Ledger(redis.Redis.from_url(redis_url, decode_responses=True))
    ref = pax8_ref("r1")
    ledger.accept(Notice("r1", "d1", "a1", "NetNew", False, "{}"))
    start = time.time()
    first = ledger.claim(ref, "d1", "task-1", 60, 5, call_seconds=5, now=start, token="first")
    assert first.action == "claimed"
    # The same message again (its first holder cut off past the visibility timeout): it
    # waits out the first vendor call's deadline, then the claim passes to it under a new
    # token while the first lease still runs.
    again = ledger.claim(ref, "d1", "task-1", 60, 5, now=start + 1, token="second")
    assert again.action == "wait"
    later = start + 6
    assert ledger.claim(ref, "d1", "task-1", 60, 5, now=later, token="second").action == "claimed"
    assert ledger.claim(ref, "d1", "task-2", 60, 5, token="third").action == "busy"
    # The first holder comes back: none of its writes land.
    assert ledger.finish(ref, "d1", "first", "Success").action == "stale"
    assert ledger.release_for_retry(ref, "d1", "first", "late").action == "stale"
    assert ledger.mark_dead(ref, "late", "first").action == "stale"
    record = ledger.get(ref)
    assert record is not None and record.state is State.PROVISIONING and record.retries == 0
    assert ledger.finish(ref, "d1", "second", "Success").action == "ok"
    ledger.redis.close()


class TakenOver(VendorAdapter):
    """Plays a worker cut off during its vendor call: while it calls, a redelivery of the
    same message (same task id) claims the order; then the call ends with ``outcome``.

    The redelivery comes after the visibility timeout, past the call's deadline (so it does
    not wait for the call): its claim is dated just after that deadline."""

    call_deadline_seconds = 1.0

    def __init__(self, services: Services, task_id: str, outcome: Any) -> None:
        super().__init__(None)
        self.services = services
        self.task_id = task_id
        self.outcome = outcome

    def handle(self, order: Order) -> Provisioned:
        ref, policies = pax8_ref(order.request_id), self.services.policies
        change = self.services.ledger.claim(
            ref,
            order.detail_id,
            self.task_id,
            60,
            policies.max_claims,
            now=time.time() + 2 * self.call_deadline_seconds,
            token="redelivery",
        )
        assert change.action == "claimed"
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert isinstance(self.outcome, Provisioned)
        return self.outcome


@pytest.mark.parametrize(
    "outcome",
    [
        Provisioned(subscription_id="sub-late"),
        TransientVendorError("vendor timed out"),
        KeyError("a bug"),
    ],
    ids=["success", "transient", "adapter-bug"],
)
def test_a_worker_whose_claim_was_taken_over_writes_and_reports_nothing(
    make_services: ServicesFactory, pax8: Pax8World, outcome: Any
) -> None:
    services = make_services()
    services._adapters = One(services.settings, TakenOver(services, "task-1", outcome))  # noqa: SLF001
    request_id, detail_id, _ = order_at_pax8(pax8, services)

    late = fulfil(services, pax8_ref(request_id), detail_id, "task-1")

    assert late.next is Next.DONE and "claim lost" in late.reason, late
    record = services.ledger.get(request_id)
    assert record is not None and record.state is State.PROVISIONING
    assert record.retries == 0 and record.outcome is None
    assert pax8.results(request_id) == []  # nothing reported: the new holder will
    assert services.publisher.reported == []  # type: ignore[attr-defined]


# -- durable transitions against a real replica ---------------------------------------------


@dataclass
class Replicated:
    """A master, one replica of it, and a sentinel watching them."""

    master: RedisServer
    replica: RedisServer
    sentinel: SentinelServer

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.master.url, decode_responses=True)

    def frozen(self) -> Frozen:
        return Frozen(self.replica)


class Frozen:
    """The replica stopped (SIGSTOP) for a ``with`` block: connected, confirming nothing."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server

    def __enter__(self) -> None:
        self.server.freeze()

    def __exit__(self, *exc: object) -> None:
        self.server.thaw()


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    base = tmp_path_factory.mktemp("replicated")
    master = RedisServer(base / "master", appendonly=False).start()
    replica = RedisServer(base / "replica", appendonly=False, replica_of=master.address)
    sentinel = SentinelServer(base / "sentinel", MASTER, master.address, quorum=1)
    try:
        replica.start()
        sentinel.start()
        client = redis.Redis.from_url(master.url)
        wait_until(lambda: client.info("replication")["connected_slaves"] == 1, 20)
        client.close()
        yield Replicated(master, replica, sentinel)
    finally:
        for server in (sentinel, replica, master):
            server.stop()


@pytest.fixture
def fresh(replicated: Replicated) -> Replicated:
    client = replicated.client()
    client.flushall()
    client.execute_command("WAIT", 1, 2000)
    client.close()
    return replicated


def durable_ledger(replicated: Replicated, replicas: int = 1) -> Ledger:
    return Ledger(replicated.client(), wait_replicas=replicas, wait_timeout_ms=100)


def test_a_durable_write_counts_only_once_a_replica_confirms_it(fresh: Replicated) -> None:
    ledger = durable_ledger(fresh)
    ref = pax8_ref("r1")
    assert ledger.accept(Notice("r1", "d1", "a1", "NetNew", False, "{}")).action == "provision"
    with fresh.frozen():
        with pytest.raises(NotReplicated) as caught:
            ledger.accept(Notice("r2", "d1", "a1", "NetNew", False, "{}"))
        # The master has it (the reply says what the script did); nobody may act on it yet.
        assert caught.value.confirmed == 0 and caught.value.reply[0] == "provision"
        # A duplicate writes nothing of its own, yet it answers from what was written:
        # it waits for the replica too, rather than confirming at once.
        with pytest.raises(NotReplicated):
            ledger.accept(Notice("r2", "d1", "a1", "NetNew", False, "{}"))
    assert ledger.accept(Notice("r2", "d1", "a1", "NetNew", False, "{}")).action == "provision"
    # More replicas than exist: never confirmed.
    with pytest.raises(NotReplicated) as caught:
        durable_ledger(fresh, replicas=2).claim(ref, "d1", "t", 60, 5)
    assert (caught.value.wanted, caught.value.confirmed) == (2, 1)
    ledger.redis.close()


def test_an_unconfirmed_claim_is_given_back_without_spending_a_budget(fresh: Replicated) -> None:
    ledger = durable_ledger(fresh)
    ref = pax8_ref("r1")
    ledger.accept(Notice("r1", "d1", "a1", "NetNew", False, "{}"))
    ledger.mark_queued(ref, "d1")
    with fresh.frozen(), pytest.raises(NotReplicated):
        ledger.claim(ref, "d1", "task-1", 60, 5, token="tok")
    record = ledger.get(ref)
    assert record is not None and record.state is State.QUEUED
    assert (record.retries, record.claims) == (0, 0)
    assert ledger.claim(ref, "d1", "task-1", 60, 5, token="tok").action == "claimed"
    with fresh.frozen(), pytest.raises(NotReplicated):
        ledger.finish(ref, "d1", "tok", "Success")  # stored on the master, not confirmed
    assert ledger.claim(ref, "d1", "task-1", 60, 5).action == "done"
    ledger.redis.close()


def test_a_new_master_without_the_scripts_loads_them(fresh: Replicated) -> None:
    ledger = durable_ledger(fresh)
    ledger.accept(Notice("r1", "d1", "a1", "NetNew", False, "{}"))
    ledger.redis.script_flush()  # what a promoted replica or a restarted master looks like
    assert ledger.accept(Notice("r1", "d1", "a2", "NetNew", False, "{}")).action == "provision"
    ledger.redis.close()


def test_provisioning_waits_for_the_replica_before_calling_the_vendor(
    fresh: Replicated, pax8: Pax8World
) -> None:
    settings = make_settings(fresh.master.url, redis_wait_replicas=1, redis_wait_timeout_ms=100)
    calls: list[str] = []

    class Counting(VendorAdapter):
        def handle(self, order: Order) -> Provisioned:
            calls.append(order.request_id)
            return Provisioned(subscription_id="sub-1")

    services = Services(
        settings,
        publisher=RecordingPublisher(),
        pax8=pax8.client,
        adapters=One(settings, Counting(None)),
    )
    try:
        request_id, detail_id, _ = order_at_pax8(pax8, services)
        ref = pax8_ref(request_id)
        with fresh.frozen(), pytest.raises(NotReplicated):
            provision(services, ref, detail_id, "task-1")
        assert calls == []  # no vendor call on a claim a failover could lose
        assert fulfil(services, ref, detail_id, "task-1").state is State.REPORTED
        assert calls == [request_id] and len(pax8.results(request_id)) == 1
    finally:
        services.redis.close()


def test_the_receiver_answers_503_until_a_replica_holds_the_record(fresh: Replicated) -> None:
    settings = make_settings(fresh.master.url, redis_wait_replicas=1, redis_wait_timeout_ms=100)
    app = create_app(settings, build_services(settings, RedisUse.RECEIVER))
    client = app.test_client()
    body = json.dumps(notification()).encode()
    headers = {"pax8ApiTokenV1": PROD_SECRET, "Content-Type": "application/json"}
    try:
        with fresh.frozen():
            refused = client.post("/webhooks/pax8", data=body, headers=headers)
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        assert refused.get_json()["error"] == "the queue is unavailable; retry later"
        accepted = client.post("/webhooks/pax8", data=body, headers=headers)
        assert accepted.status_code == 202
        replica = redis.Redis.from_url(fresh.replica.url, decode_responses=True)
        assert replica.llen("fulfillment.net_new") == 1  # the task is on the replica too
        replica.close()
    finally:
        app.extensions["fulfillment"].services.close()


def test_a_sentinel_client_finds_the_master(fresh: Replicated) -> None:
    settings = explicit_settings(
        redis_url="redis://nowhere.invalid:1/2",  # only its database is used
        redis_sentinels=f"{fresh.sentinel.host}:{fresh.sentinel.port}",
        redis_sentinel_master=MASTER,
    )
    client = redis_client(settings, RedisUse.CLI, decode=True)
    try:
        client.set("written", "through the sentinel")
        direct = redis.Redis.from_url(fresh.master.url.replace("/0", "/2"), decode_responses=True)
        assert direct.get("written") == "through the sentinel"
        direct.close()
    finally:
        client.close()
