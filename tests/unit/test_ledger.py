"""The plain functions: backoff, parsing, the ledger's transitions, locks, result building.

The ledger and lock tests run against a real redis-server (their logic is Lua and Redis
semantics); the rest is pure.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from cli.redis_server import RedisServer
from fulfillment.intake.notifications import InvalidNotification, parse_pax8
from fulfillment.ledger import Ledger, Notice
from fulfillment.ledger.locks import RedisLock
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.workflow.backoff import backoff_delay
from fulfillment.workflow.reporting import build_result
from pax8.models import RequestType
from tests.support.stack import notification

# -- backoff -------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_respects_caps() -> None:
    low = [backoff_delay(n, 2.0, 600.0, rng=lambda: 0.0) for n in range(6)]
    high = [backoff_delay(n, 2.0, 600.0, rng=lambda: 1.0) for n in range(6)]
    assert low == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]  # never less than half the step
    assert high == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    assert backoff_delay(20, 2.0, 600.0, rng=lambda: 1.0) == 600.0


def test_retry_after_is_a_floor_up_to_the_limit() -> None:
    assert backoff_delay(0, 2.0, 10.0, retry_after=7.0, rng=lambda: 0.0) == 7.0
    assert backoff_delay(0, 2.0, 10.0, retry_after=30.0, rng=lambda: 0.0) == 10.0
    assert backoff_delay(0, 2.0, 10.0, retry_after=30.0, rng=lambda: 0.0, limit=25.0) == 25.0
    assert backoff_delay(5, 2.0, 10.0, retry_after=1.0, rng=lambda: 1.0) == 10.0


# -- parsing -------------------------------------------------------------------------------


def test_parse_pax8_keeps_the_raw_payload_and_reads_ids() -> None:
    body = notification("TrialCreate", simulation=True, somethingNew=1)
    notice, parsed = parse_pax8(json.dumps(body).encode())
    assert notice.request_id == body["provisionRequest"]["id"]
    assert notice.detail_id == body["provisionDetail"]["id"]
    assert notice.attempt_id == body["provisionAttempt"]["id"]
    assert notice.type == "TrialCreate" and notice.simulation
    assert json.loads(notice.payload)["provisionRequest"]["somethingNew"] == 1
    assert parsed.provision_request.request_type is RequestType.TRIAL_CREATE


def test_parse_pax8_takes_the_detail_id_from_the_attempt() -> None:
    body = notification()
    detail_id = body["provisionDetail"].pop("id")
    notice, _ = parse_pax8(json.dumps(body).encode())
    assert notice.detail_id == detail_id


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("provisionRequest"), "provisionRequest"),
        (lambda b: b["provisionAttempt"].pop("id"), "provisionAttempt.id"),
        (lambda b: b["provisionRequest"].update(type="Upgrade"), "provisionRequest.type"),
        (
            lambda b: (
                b["provisionDetail"].pop("id"),
                b["provisionAttempt"].pop("provisionDetailId"),
            ),
            "provisionDetail.id",
        ),
        (lambda b: b["provisionRequest"].update(quantity=[1]), "provisionRequest.quantity"),
    ],
)
def test_parse_pax8_names_the_field(mutate: object, field: str) -> None:
    body = notification()
    mutate(body)  # type: ignore[operator]
    with pytest.raises(InvalidNotification) as caught:
        parse_pax8(json.dumps(body).encode())
    assert caught.value.field == field


# -- ledger --------------------------------------------------------------------------------


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    return redis_client


@pytest.fixture
def ledger(client: redis.Redis) -> Ledger:
    return Ledger(client, prefix=f"t{uuid.uuid4().hex[:6]}:")


def pax8(request_id: str) -> Ref:
    """The ref of a Pax8 production request (what :func:`notice` records)."""
    return Ref(Scope.PAX8, request_id)


def notice(request_id: str = "r1", detail: str = "d1", attempt: str = "a1") -> Notice:
    return Notice(request_id, detail, attempt, "NetNew", False, "{}")


def test_accept_decides_what_to_enqueue(ledger: Ledger) -> None:
    assert ledger.accept(notice()).action == "provision"
    assert ledger.accept(notice()).action == "provision"  # not yet confirmed queued
    assert ledger.mark_queued(pax8("r1"), "d1") == "queued"
    assert ledger.accept(notice()).action == "inflight"
    assert ledger.accept(notice(attempt="a2")).action == "inflight"
    assert [a.id for a in ledger.attempts("r1")] == ["a1", "a2"]
    assert ledger.claim(pax8("r1"), "d1", "t1", 60, 5).action == "claimed"
    assert ledger.finish(pax8("r1"), "d1", "t1", "Success", {"x": "1"}, {}).action == "ok"
    assert ledger.accept(notice()).action == "duplicate"
    assert ledger.accept(notice(attempt="a3")).action == "report"
    assert ledger.accept(notice(detail="d2", attempt="a4")).action == "provision"
    record = ledger.get("r1")
    assert record is not None and record.state == "received" and record.detail_id == "d2"


def test_finish_starts_the_report_run_in_the_same_round_trip_when_given_the_lock(
    ledger: Ledger,
) -> None:
    for request_id in ("r1", "r2", "r3"):
        ledger.accept(notice(request_id))
        ledger.mark_queued(pax8(request_id), "d1")
        assert ledger.claim(pax8(request_id), "d1", "t1", 60, 5).action == "claimed"
    # Free: the lock is taken, the record read, the owed attempt marked posting.
    lock = ledger.report_lock(pax8("r1"), 60, owner="t1")
    change = ledger.finish(pax8("r1"), "d1", "t1", "Success", {"x": "1"}, {}, report=lock)
    assert change.action == "ok" and change.report is not None
    assert change.report.action == "locked" and lock.held
    assert change.report.record is not None and change.report.record.state == "provisioned"
    assert [a.status for a in change.report.attempts] == ["pending"]  # as they were before
    assert [a.status for a in ledger.attempts("r1")] == ["posting"]
    assert ledger.redis.get(lock.key) == "t1"
    # Held by another run: the outcome is stored all the same, nothing marked, not ours.
    busy = ledger.report_lock(pax8("r2"), 60, owner="t1")
    ledger.redis.set(busy.key, "someone-else", px=60000)
    change = ledger.finish(pax8("r2"), "d1", "t1", "Fail", message="no", report=busy)
    assert change.action == "ok" and change.report is not None
    assert change.report.action == "busy" and not busy.held
    assert ledger.get("r2").state == "failed"  # type: ignore[union-attr]
    assert [a.status for a in ledger.attempts("r2")] == ["pending"]
    # A lost claim stores nothing and takes no lock.
    lost = ledger.report_lock(pax8("r3"), 60, owner="t2")
    change = ledger.finish(pax8("r3"), "d1", "t2", "Success", report=lost)
    assert change.action == "stale" and change.report is None and not lost.held
    assert ledger.redis.get(lost.key) is None


def test_claim_is_exclusive_and_recovers_a_lost_holder(ledger: Ledger) -> None:
    ledger.accept(notice())
    with ThreadPoolExecutor(8) as pool:
        actions = list(
            pool.map(lambda i: ledger.claim(pax8("r1"), "d1", f"t{i}", 60, 5).action, range(8))
        )
    assert actions.count("claimed") == 1 and actions.count("busy") == 7
    holder = next(f"t{i}" for i, a in enumerate(actions) if a == "claimed")
    later = time.time() + 61  # the first call's deadline (the lease, when not given) passed
    assert ledger.claim(pax8("r1"), "d1", holder, 60, 5, now=later).action == "claimed"
    assert ledger.claim(pax8("r1"), "d1", "other", -1, 5, now=10**10).action == "claimed"  # expired
    assert ledger.claim(pax8("r1"), "stale-detail", "x", 60, 5).action == "stale"


def test_a_redelivery_waits_until_the_earlier_calls_deadline(ledger: Ledger) -> None:
    # The same task id comes back at once when its pool child is killed mid-call: the
    # first call may still be running at the vendor until its deadline (here 20 s).
    ledger.accept(notice())
    start = 1_000_000.0
    claimed = ledger.claim(pax8("r1"), "d1", "t", 60, 5, call_seconds=20, now=start)
    assert claimed.action == "claimed" and claimed.wait == 0
    again = ledger.claim(pax8("r1"), "d1", "t", 60, 5, call_seconds=20, now=start + 5)
    assert again.action == "wait" and again.wait == pytest.approx(15)
    assert again.previous == "provisioning"
    # Another task (reconciliation's copy, a replay) waits the same once the lease is gone.
    other = ledger.claim(pax8("r1"), "d1", "t2", 1, 5, call_seconds=20, now=start + 19)
    assert other.action == "busy"  # the lease (60 s) still holds
    record = ledger.get("r1")
    assert record is not None and record.claims == 1  # waiting is not a delivery
    assert record.call_until == pytest.approx(start + 20)
    assert ledger.claim(pax8("r1"), "d1", "t", 60, 5, call_seconds=20, now=start + 20.5).action == (
        "claimed"
    )
    notes = [h for h in ledger.history("r1") if h["event"] == "wait"]
    assert len(notes) == 1 and "15.0s" in notes[0]["note"]


def test_a_new_attempt_after_dead_keeps_the_body_its_key_was_sent_with(ledger: Ledger) -> None:
    first = Notice("r1", "d1", "a1", "NetNew", False, '{"attempt": "a1"}')
    ledger.accept(first)
    ledger.mark_dead(pax8("r1"), "vendor still failing")
    again = Notice("r1", "d1", "a2", "NetNew", False, '{"attempt": "a2"}')
    assert ledger.accept(again).action == "provision"
    record = ledger.get("r1")
    # Same detail, same Idempotency-Key: the repeat must carry the body the key was used with.
    assert record is not None and record.payload == '{"attempt": "a1"}'
    assert record.attempt_id == "a2" and [a.id for a in ledger.attempts("r1")] == ["a1", "a2"]


def test_only_an_answer_ends_a_call(ledger: Ledger) -> None:
    ledger.accept(notice())
    now = time.time()
    ledger.claim(pax8("r1"), "d1", "t", 60, 5, call_seconds=30, now=now)
    # A timeout or the soft limit: the call may go on at the vendor, its deadline stays.
    assert ledger.release_for_retry(pax8("r1"), "d1", "t", "timed out").action == "ok"
    waiting = ledger.claim(pax8("r1"), "d1", "t", 60, 5, call_seconds=30, now=now + 1)
    assert waiting.action == "wait" and waiting.wait == pytest.approx(29)
    assert ledger.get("r1").state == "queued"  # type: ignore[union-attr]
    # An operator's replay does not cancel a call that may be running either.
    ledger.reset(pax8("r1"), event="replay")
    assert ledger.claim(pax8("r1"), "d1", "t", 60, 5, now=now + 2).action == "wait"
    # An answer (a 503, a 409) ends the call: the retry goes when its backoff says.
    ledger.claim(pax8("r1"), "d1", "t", 60, 5, call_seconds=30, now=now + 31)
    ledger.release_for_retry(pax8("r1"), "d1", "t", "vendor 503", call_ended=True)
    assert ledger.claim(pax8("r1"), "d1", "t", 60, 5, call_seconds=30).action == "claimed"
    # A stored outcome ends it too.
    ledger.finish(pax8("r1"), "d1", "t", "Success")
    assert ledger.get("r1").call_until == 0  # type: ignore[union-attr]


def test_a_task_that_keeps_dying_is_declared_dead(ledger: Ledger) -> None:
    ledger.accept(notice())
    for _ in range(3):
        assert ledger.claim(pax8("r1"), "d1", "t", 60, 3, call_seconds=0).action == "claimed"
    assert ledger.claim(pax8("r1"), "d1", "t", 60, 3, call_seconds=0).action == "dead_now"
    record = ledger.get("r1")
    assert record is not None and record.state == "dead" and "3 times" in record.error
    assert ledger.claim(pax8("r1"), "d1", "t", 60, 3).action == "dead"


def test_retry_and_settle(ledger: Ledger) -> None:
    ledger.accept(notice())
    ledger.claim(pax8("r1"), "d1", "t", 60, 5)
    assert ledger.release_for_retry(pax8("r1"), "d1", "t", "vendor 503", True).action == "ok"
    assert ledger.finish(pax8("r1"), "d1", "t", "Success").action == "stale"  # claim released
    ledger.claim(pax8("r1"), "d1", "t", 60, 5)
    ledger.finish(pax8("r1"), "d1", "t", "Fail", message="No.")
    ledger.accept(notice(attempt="a2"))
    assert ledger.settle(pax8("r1"), "a1", "res-1") == "failed"  # a2 still owed
    assert ledger.settle(pax8("r1"), "a2", "res-2") == "reported"
    record = ledger.get("r1")
    assert record is not None and record.retries == 1 and record.outcome == "Fail"
    assert [h["state"] for h in ledger.history("r1")] == [
        "received",
        "queued",
        "provisioning",
        "queued",
        "provisioning",
        "failed",
        "reported",
    ]
    assert ledger.counts()["reported"] == 1


def test_build_result_from_the_record(ledger: Ledger) -> None:
    ledger.accept(notice())
    ledger.claim(pax8("r1"), "d1", "t", 60, 5)
    ids = {"externalProvisionerSubscriptionId": "sub-1"}
    ledger.finish(pax8("r1"), "d1", "t", "Success", ids, {"seats": 3})
    record = ledger.get("r1")
    assert record is not None
    success = build_result(record, "a1")
    assert success.external_provisioner_subscription_id == "sub-1"
    assert success.metadata == {"seats": 3} and success.provision_attempt_id == "a1"


def test_lock_has_an_owner_and_expires(client: redis.Redis) -> None:
    first = RedisLock(client, f"lock:{uuid.uuid4()}", 0.2)
    second = RedisLock(client, first.key, 5)
    assert first.acquire() and not second.acquire()
    client.pexpire(first.key, 1)  # as if the holder had died long ago
    client.delete(first.key)
    assert second.acquire()
    assert not first.release()  # not its lock any more
    assert client.get(first.key) == second.token
    assert second.release()


def test_an_owner_takes_its_own_lock_back(client: redis.Redis) -> None:
    key = f"lock:{uuid.uuid4()}"
    crashed = RedisLock(client, key, 60, owner="task-1")
    assert crashed.acquire()  # then its process dies without releasing
    assert not RedisLock(client, key, 60, owner="task-2").acquire()
    redelivered = RedisLock(client, key, 60, owner="task-1")
    assert redelivered.acquire() and redelivered.release()
    assert client.get(key) is None


def test_raw_task_messages_match_what_kombu_publishes(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from worker.app import app
    from worker.messages import message_headers, task_message

    server = RedisServer(tmp_path_factory.mktemp("kombu"), appendonly=False).start()
    try:
        monkeypatch.setattr(app.conf, "broker_url", server.url)
        app.send_task(
            "fulfillment.net_new",
            args=["r", "d"],
            kwargs={"simulation": True},
            queue="fulfillment.net_new",
            headers=message_headers(),  # as worker.publish.CeleryPublisher sends it
        )
        client = redis.Redis.from_url(server.url)
        published = json.loads(client.lpop("fulfillment.net_new"))
        client.close()
        app.pool.force_close_all()
    finally:
        server.stop()
    ours = json.loads(
        task_message(
            app, "fulfillment.net_new", ["r", "d"], {"simulation": True}, "fulfillment.net_new"
        )
    )
    assert ours.keys() == published.keys()
    assert ours["headers"].keys() == published["headers"].keys()
    assert ours["properties"].keys() == published["properties"].keys()
    for volatile in ("id", "root_id", "origin"):
        ours["headers"].pop(volatile), published["headers"].pop(volatile)
    assert ours["headers"] == published["headers"]
    for volatile in ("correlation_id", "delivery_tag", "reply_to"):
        ours["properties"].pop(volatile), published["properties"].pop(volatile)
    assert ours["properties"] == published["properties"]
    assert base64.b64decode(ours["body"]) == base64.b64decode(published["body"])


def test_accept_can_enqueue_atomically(ledger: Ledger, client: redis.Redis) -> None:
    queue = f"q-{uuid.uuid4()}"
    change = ledger.accept(notice(), (queue, "message-1"))
    assert change.action == "queued"
    assert client.lrange(queue, 0, -1) == ["message-1"]
    assert ledger.accept(notice(), (queue, "message-2")).action == "inflight"
    assert client.llen(queue) == 1  # nothing enqueued twice
    assert [h["state"] for h in ledger.history("r1")] == ["received", "queued"]


def test_reported_records_are_purged_after_the_retention(ledger: Ledger) -> None:
    for request_id in ("old", "kept"):
        ledger.accept(notice(request_id))
        ledger.claim(pax8(request_id), "d1", "t", 60, 5)
        ledger.finish(pax8(request_id), "d1", "t", "Success")
        assert ledger.settle(pax8(request_id), "a1", "res") == "reported"
    ledger.accept(notice("busy"))
    cutoff = ledger.get("kept").state_at  # type: ignore[union-attr]
    assert ledger.purge_reported(older_than=cutoff) == 1  # only "old" reported before it
    assert ledger.get("old") is None and ledger.attempts("old") == []
    assert ledger.get("kept") is not None and ledger.get("busy") is not None
    assert ledger.counts()["reported"] == 1


def test_the_app_connects_through_the_safe_redis_transport_under_its_own_url() -> None:
    from worker.app import app
    from worker.broker import Transport

    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        # Logs and Flower's broker view still see a redis:// URL.
        assert connection.as_uri().startswith("redis://")


# -- fulfill dev --once: what it says about the orders that went wrong ------------------------


def test_the_demo_names_every_order_that_missed_its_expected_result() -> None:
    from cli.demo import DemoRun, demo_orders, missed_lines
    from cli.follow import Followed
    from fulfillment.ledger import Record

    orders = demo_orders(4)  # NetNew, NetNew (Fail expected), Update, TrialCreate
    run = DemoRun(orders)

    def record(state: str, outcome: str = "", message: str = "") -> Record:
        return Record(
            id="r", state=state, type="NetNew", source="pax8", simulation=True, detail_id="d",
            attempt_id="a", payload="{}", outcome=outcome, result_message=message,
        )  # fmt: skip

    run.followed[0] = Followed("r0", "#1", done=True, record=record("reported", "Success"))
    run.followed[1] = Followed("r1", "#2", done=True, record=record("reported", "Success"))
    run.followed[2] = Followed("r2", "#3", record=record("queued"))
    run.refused[3] = "webhook Failed: 401"
    lines = missed_lines(run)
    assert not run.all_ok
    assert len(lines) == 3 and not any(line.startswith("  #1 ") for line in lines)
    assert lines[0] == "  #2 NetNew: expected Fail; Success (no message)"
    assert lines[1] == "  #3 Update: expected Success; no result yet (request r2, state queued)"
    assert "#4 TrialCreate" in lines[2] and "webhook was refused (webhook Failed: 401)" in lines[2]
    run.followed[1] = Followed("r1", "#2", done=True, record=record("reported", "Fail", "domain"))
    assert [line.split(":")[0] for line in missed_lines(run)] == ["  #2 NetNew", "  #3 Update",
                                                                  "  #4 TrialCreate"]  # fmt: skip
