"""Workers' heartbeats and who holds each message, against a real redis-server.

The heartbeat and delivery scripts (``fulfillment/ledger/lua``), the broker QoS that runs
them on kombu's own channel (``worker/broker.py``), the heartbeat's trust and its look for
lost messages (``worker/liveness.py``), and what operators are shown. Crashes with real
processes are the fault suite's (``tests/faults/test_worker_faults.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from config.settings import ConfigError, explicit_settings
from fulfillment.ledger import Ledger, Notice
from fulfillment.ledger.keys import BROKER_UNACKED, Keys
from fulfillment.ledger.liveness import Liveness, holder_value, worker_id
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.states import State
from fulfillment.views.orders import describe, holder_line
from tests.unit.conftest import make_settings
from worker import liveness
from worker.broker import HeldQoS
from worker.config import celery_config
from worker.factory import FulfillmentCelery, create_celery
from worker.liveness import Heartbeat
from worker.messages import order_of, task_message

QUEUE = "fulfillment.net_new"
KEYS = Keys()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def app(redis_url: str) -> Iterator[FulfillmentCelery]:
    celery = create_celery(make_settings(redis_url))
    yield celery
    celery.close()


def heartbeat(redis_url: str, app: FulfillmentCelery, node: str = "w@host") -> Heartbeat:
    return Heartbeat(make_settings(redis_url), app, node)


def stale(client: redis.Redis, worker: str, seconds_ago: float) -> None:
    """Play a worker whose last heartbeat was ``seconds_ago`` (by Redis's clock)."""
    seconds, micros = client.time()
    client.zadd(KEYS.workers, {worker: seconds + micros / 1e6 - seconds_ago})


def order(client: redis.Redis, request_id: str = "r1") -> tuple[Ledger, Ref]:
    ledger = Ledger(client)
    ledger.accept(Notice(request_id, "d1", "a1", "NetNew", False, "{}"))
    ledger.mark_queued(Ref(Scope.PAX8, request_id), "d1")
    return ledger, Ref(Scope.PAX8, request_id)


# -- settings and ids -------------------------------------------------------------------------


def test_the_liveness_settings_and_what_the_broker_makes_of_them() -> None:
    default = explicit_settings()
    assert (default.worker_heartbeat_seconds, default.worker_lost_after_seconds) == (5.0, 30.0)
    assert default.visibility_timeout_seconds == 3600.0  # the last net only, kept as it was
    options = celery_config(default)["broker_transport_options"]
    # The sweep of gone workers ticks every heartbeat; kombu's visibility scan once a minute.
    assert options["unacked_restore_interval"] == 5.0
    assert options["unacked_restore_throttle"] == 12
    with pytest.raises(ConfigError) as caught:
        explicit_settings(worker_heartbeat_seconds=10, worker_lost_after_seconds=20)
    assert caught.value.variable == "WORKER_LOST_AFTER_SECONDS"
    with pytest.raises(ConfigError) as caught:
        explicit_settings(worker_heartbeat_seconds=0)
    assert caught.value.variable == "WORKER_HEARTBEAT_SECONDS"


def test_a_worker_id_names_the_node_and_pid_is_new_per_start_and_safe_to_print() -> None:
    first = worker_id("worker-1@host", 7, "a1b2")
    assert first == "worker-1@host/7/a1b2"
    assert worker_id("worker-1@host", 7, "c3d4") != first  # a restart with the same pid
    hostile = worker_id("w\x1b[31m@h ost\n", 8, "x y")
    assert hostile == "w__31m@h_ost_/8/x_y" and " " not in hostile and "\x1b" not in hostile


def test_order_of_names_the_order_a_message_is_for(app: FulfillmentCelery) -> None:
    raw = task_message(app, QUEUE, ["req-1", "d1"], {"simulation": True, "source": "pax8"}, QUEUE)
    assert order_of(json.loads(raw)) == "pax8-sim:req-1"
    cloudblue = task_message(app, QUEUE, ["cb-1", "d1"], {"source": "cloudblue"}, QUEUE)
    assert order_of(json.loads(cloudblue)) == "cloudblue:cb-1"
    other = task_message(app, "fulfillment.reconcile", [], {}, "fulfillment.reconcile")
    assert order_of(json.loads(other)) == ""
    hostile = task_message(app, QUEUE, ["../x y", "d1"], {}, QUEUE)
    assert order_of(json.loads(hostile)) == ""  # never an unchecked id
    assert order_of({"headers": {"task": QUEUE}, "body": "not base64!"}) == ""


# -- the scripts --------------------------------------------------------------------------------


def test_a_heartbeat_finds_gone_workers_by_redis_time_and_one_looks_per_interval(
    client: redis.Redis,
) -> None:
    registry = Liveness(client)
    first = registry.beat("a", lost_after=30, look_every=60)
    assert first.dead == frozenset() and first.look is not None
    assert abs(first.now - registry.client.time()[0]) < 2  # Redis's clock, not ours
    assert first.look.live == {"a"}
    stale(client, "b", 31)
    again = registry.beat("a", lost_after=30, look_every=60)
    assert again.dead == {"b"}
    assert again.look is None  # another look only once the interval has passed
    client.delete(KEYS.liveness_scan)
    assert registry.beat("c", lost_after=30, look_every=60, look=False).look is None
    assert client.exists(KEYS.liveness_scan) == 0  # left to a worker that may look
    # A worker swept as gone that beats again (it was only cut off) is alive again.
    assert registry.bury("b", 30)
    assert client.zscore(KEYS.workers_gone, "b") is not None
    assert registry.beat("b", lost_after=30, look_every=60).dead == frozenset()
    assert client.zscore(KEYS.workers_gone, "b") is None
    assert client.zscore(KEYS.workers, "b") is not None


def test_a_gone_worker_is_buried_only_once_it_holds_nothing(client: redis.Redis) -> None:
    registry = Liveness(client)
    stale(client, "gone", 40)
    registry.beat("alive", lost_after=30, look_every=60)
    client.hset(KEYS.holders, "tag-1", holder_value("gone", "pax8:r1"))
    assert not registry.bury("gone", 30)  # still holds a message
    assert not registry.bury("alive", 30)  # not gone
    client.hdel(KEYS.holders, "tag-1")
    assert registry.bury("gone", 30)
    assert client.zscore(KEYS.workers, "gone") is None
    assert client.zscore(KEYS.workers_gone, "gone") is not None
    assert registry.bury("alive", 0)  # a worker leaving cleanly goes at once


# -- the broker's QoS on kombu's own channel ------------------------------------------------------


class Broker:
    """A worker's consuming side in this process: its heartbeat and a kombu channel."""

    def __init__(self, app: FulfillmentCelery, heart: Heartbeat) -> None:
        self.app = app
        self.heart = heart
        self.connection = app.connection_for_read()
        self.channel: Any = self.connection.default_channel

    @property
    def qos(self) -> HeldQoS:
        qos = self.channel.qos
        assert isinstance(qos, HeldQoS)
        return qos

    def publish(self, request_id: str) -> None:
        self.app.send_task(QUEUE, args=[request_id, "d1"], kwargs={"source": "pax8"}, queue=QUEUE)

    def take(self) -> Any:
        message = self.channel.basic_get(QUEUE, no_ack=False)
        assert message is not None
        return message

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def broker(
    redis_url: str, app: FulfillmentCelery, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Broker]:
    heart = heartbeat(redis_url, app)
    heart.beat_once()
    monkeypatch.setattr(liveness, "_current", heart)
    consumer = Broker(app, heart)
    yield consumer
    consumer.close()


def test_a_delivery_records_its_holder_and_its_ack_forgets_it(
    broker: Broker, client: redis.Redis
) -> None:
    broker.publish("r1")
    message = broker.take()
    tag = message.delivery_tag
    assert client.hget(KEYS.holders, tag) == f"{broker.heart.id} pax8:r1"
    assert client.hexists(BROKER_UNACKED, tag)
    message.ack()
    assert not client.hexists(BROKER_UNACKED, tag) and not client.hexists(KEYS.holders, tag)
    assert client.zcard("unacked_index") == 0


def test_a_late_ack_or_requeue_leaves_a_message_another_worker_holds_now(
    broker: Broker, client: redis.Redis
) -> None:
    broker.publish("r1")
    broker.publish("r2")
    late_ack, late_requeue = broker.take(), broker.take()
    # Both were taken for gone and delivered again elsewhere (same tags, a new holder).
    for message in (late_ack, late_requeue):
        client.hset(KEYS.holders, message.delivery_tag, holder_value("other/1/x", "pax8:r"))
    late_ack.ack()
    late_requeue.reject(requeue=True)
    for message in (late_ack, late_requeue):
        assert client.hexists(BROKER_UNACKED, message.delivery_tag)  # still the other's
    assert client.llen(QUEUE) == 0  # nothing queued twice


def test_the_sweep_puts_a_gone_workers_messages_back_first_in_line(
    broker: Broker, client: redis.Redis
) -> None:
    broker.publish("r1")
    broker.publish("r2")
    mine, theirs = broker.take(), broker.take()
    dead = "dead@host/99/dead"
    client.hset(KEYS.holders, theirs.delivery_tag, holder_value(dead, "pax8:r2"))
    stale(client, dead, 31)
    broker.publish("r3")  # waits in the queue
    restored = broker.qos.sweep(frozenset({dead}), broker.heart.liveness, 30)
    assert restored == 1
    assert client.hexists(BROKER_UNACKED, mine.delivery_tag)  # a live worker's stays
    assert not client.hexists(BROKER_UNACKED, theirs.delivery_tag)
    taken_next = json.loads(client.lindex(QUEUE, -1) or "{}")  # BRPOP takes the right end
    assert order_of(taken_next) == "pax8:r2"
    assert taken_next["headers"]["redelivered"] is True
    assert client.zscore(KEYS.workers_gone, dead) is not None  # buried once empty-handed
    again = broker.qos.sweep(frozenset({dead}), broker.heart.liveness, 30)
    assert again == 0 and client.llen(QUEUE) == 2  # nothing twice


def test_a_handed_back_message_goes_first_in_line_and_a_close_returns_only_its_own(
    broker: Broker, client: redis.Redis
) -> None:
    for request_id in ("r1", "r2", "r3"):
        broker.publish(request_id)
    handed, kept, taken = broker.take(), broker.take(), broker.take()
    broker.publish("r4")
    broker.qos.hand_back(handed)
    assert order_of(json.loads(client.lindex(QUEUE, -1) or "{}")) == "pax8:r1"
    client.hset(KEYS.holders, taken.delivery_tag, holder_value("other/1/x", "pax8:r3"))
    broker.channel.close()  # kombu restores what the channel still holds
    queued = [order_of(json.loads(m)) for m in client.lrange(QUEUE, 0, -1)]
    assert sorted(queued) == ["pax8:r1", "pax8:r2", "pax8:r4"]  # r3 is the other's
    assert client.hexists(BROKER_UNACKED, taken.delivery_tag)
    assert not client.hexists(BROKER_UNACKED, kept.delivery_tag)


# -- the heartbeat's trust and its look for lost messages ----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_judges_others_only_after_beating_the_lost_after_time_without_a_gap(
    redis_url: str, app: FulfillmentCelery, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(liveness.time, "monotonic", clock)
    heart = heartbeat(redis_url, app)
    stale(client, "dead/1/x", 100)

    def beat(after: float) -> frozenset[str]:
        clock.now += after
        stale(client, "dead/1/x", 100)  # stays gone whatever the test's own pace
        heart.beat_once()
        return heart.gone()

    assert beat(0) == frozenset()  # just started (a replacement after a crash, say)
    assert [beat(5) for _ in range(5)] == [frozenset()] * 5  # 25 s of beating
    assert beat(5) == {"dead/1/x"}  # 30 s: trusted
    assert beat(11) == frozenset()  # a gap of over two intervals (a failover, a pause)
    assert [beat(5) for _ in range(5)] == [frozenset()] * 5
    assert beat(5) == {"dead/1/x"}
    monkeypatch.setattr(heart.liveness, "beat", _unreachable)
    assert beat(5) == {"dead/1/x"}  # a failed beat changes nothing it said...
    assert not heart.trusted  # ...but what comes next starts a new run


def _unreachable(*_: Any, **__: Any) -> Any:
    raise redis.exceptions.ConnectionError("Redis is gone")


def test_a_record_whose_message_is_nowhere_is_queued_again_and_no_other(
    redis_url: str, app: FulfillmentCelery, client: redis.Redis
) -> None:
    heart = heartbeat(redis_url, app)
    ledger = Ledger(client)
    refs = {}
    for request_id in ("lost", "waiting", "held", "claimed-live", "claimed-gone", "claimed-old"):
        refs[request_id] = order(client, request_id)[1]
    ledger.claim(refs["claimed-live"], "d1", "t1", 60, 5, worker="live/1/a")
    ledger.claim(refs["claimed-gone"], "d1", "t2", 60, 5, call_seconds=300, worker="dead/1/b")
    ledger.claim(refs["claimed-old"], "d1", "t3", 60, 5)  # 0.1.0 named no worker
    client.hset(KEYS.holders, "tag-held", holder_value("live/1/a", refs["held"].member))
    client.lpush("fulfillment.update", "someone else's")  # another type's queue is busy
    ledger.accept(Notice("waiting", "d2", "a2", "Update", False, "{}"))  # and it waits there
    refs["waiting"] = Ref(Scope.PAX8, "waiting")
    ledger.mark_queued(refs["waiting"], "d2")
    queued = [refs[name] for name in ("lost", "waiting", "held")]
    provisioning = [refs[name] for name in ("claimed-live", "claimed-gone", "claimed-old")]
    look = liveness.Look(frozenset({"live/1/a"}), queued, provisioning)

    requeued = heart.rescue(look)

    assert requeued == [refs["lost"], refs["claimed-gone"]]
    pushed = [order_of(json.loads(m)) for m in client.lrange(QUEUE, 0, -1)]
    assert sorted(pushed) == ["pax8:claimed-gone", "pax8:lost"]
    gone = ledger.get(refs["claimed-gone"])
    assert gone is not None and gone.state is State.QUEUED and gone.claim_worker == ""
    assert gone.call_until > time.time() + 200  # its call's deadline stands
    assert ledger.history(refs["lost"])[-1]["event"] == "requeued"
    # Looked at again (the record moved since): nothing twice.
    assert heart.rescue(look) == []
    assert client.llen(QUEUE) == 2


# -- what is recorded and shown -------------------------------------------------------------------


def test_a_claim_names_its_worker_and_a_record_of_0_1_0_names_none(
    client: redis.Redis,
) -> None:
    ledger, ref = order(client)
    ledger.claim(ref, "d1", "task-1", 60, 5, worker="w@h/1/a")
    record = ledger.get(ref)
    assert record is not None and record.claim_worker == "w@h/1/a"
    assert record.claim_task == "task-1"
    ledger.finish(ref, "d1", "task-1", "Success")
    assert ledger.get(ref).claim_worker == ""  # type: ignore[union-attr]
    # A record as 0.1.0 wrote it (no claim_worker field) reads with the default.
    client.hdel(KEYS.record(ref), "claim_worker")
    assert ledger.get(ref).claim_worker == ""  # type: ignore[union-attr]


def test_an_order_in_flight_shows_who_holds_it_and_a_gone_holder_as_gone(
    client: redis.Redis,
) -> None:
    ledger, ref = order(client)
    registry = Liveness(client)
    registry.beat("w@h/1/a", lost_after=30, look_every=60)
    client.hset(KEYS.holders, "tag-1", holder_value("w@h/1/a", ref.member))
    client.zadd("unacked_index", {"tag-1": 1_700_000_000.0})
    held = describe(ledger, ref, lost_after=30)
    assert held is not None and held["holding"]["claim"] is None
    assert held["record"]["id"] == ref.id and held["history"] and held["attempts"]
    (message,) = held["holding"]["messages"]
    assert message["worker"] == "w@h/1/a" and message["since"] == 1_700_000_000.0
    assert message["heartbeat"]["alive"] is True
    ledger.claim(ref, "d1", "task-1", 60, 5, call_seconds=20, worker="w@h/1/a")
    stale(client, "w@h/1/a", 45)
    view = describe(ledger, ref, lost_after=30)
    assert view is not None
    claim = view["holding"]["claim"]
    assert claim["worker"] == "w@h/1/a" and claim["heartbeat"]["alive"] is False
    now = view["holding"]["now"]
    assert holder_line(claim["worker"], claim["heartbeat"], now).startswith(
        "w@h/1/a, gone (no heartbeat for 45s"
    )
    assert view["holding"]["callUntil"] > now
    registry.client.hdel(KEYS.holders, "tag-1")
    registry.bury("w@h/1/a", 30)
    swept = describe(ledger, ref, lost_after=30)
    assert swept is not None and swept["holding"]["claim"]["heartbeat"]["swept"] is True
    ledger.finish(ref, "d1", "task-1", "Success")
    assert describe(ledger, ref)["holding"] is None  # type: ignore[index]


def test_after_a_reconnect_a_worker_hands_back_what_it_no_longer_runs(
    broker: Broker, app: FulfillmentCelery, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.publish("dropped")
    broker.publish("running")
    dropped, running = broker.take(), broker.take()  # then the connection went away
    again = Broker(app, broker.heart)  # the consumer's new connection
    try:
        fresh = (again.publish("fresh"), again.take())[1]

        class Running:
            message = running

        monkeypatch.setattr("celery.worker.state.active_requests", {Running()})
        assert again.qos.reclaim(broker.heart.id) is True  # "running" still runs: ask again
        assert [order_of(json.loads(m)) for m in client.lrange(QUEUE, 0, -1)] == ["pax8:dropped"]
        for kept in (running, fresh):
            assert client.hexists(BROKER_UNACKED, kept.delivery_tag)
        assert not client.hexists(BROKER_UNACKED, dropped.delivery_tag)
        monkeypatch.setattr("celery.worker.state.active_requests", set())
        running.ack()  # it ended, and its ack landed: nothing left to hand back
        assert again.qos.reclaim(broker.heart.id) is False
        assert client.llen(QUEUE) == 1
    finally:
        again.close()
