"""The ledger's schema stamp and its migrations, against a real redis-server.

What the stamp says decides what a process does at start: an empty Redis and 0.1.0's data
(no stamp) are stamped, current data is left as it is (not a byte written), newer data is
refused with one line and nothing written. Migrations are exercised with a chain of test
migrations (this release has none of its own): resumed after an interruption, idempotent,
one runner at a time, and a runner that lost its lock writes nothing more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from cli.redis_server import RedisServer, free_port
from config.version import LEDGER_SCHEMA, __version__
from fulfillment.ledger import Keys, Ledger, Notice
from fulfillment.ledger.migrations import (
    MIGRATIONS,
    LockLost,
    Migration,
    RecordStep,
    check_at_start,
    migrate,
)
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.schema import (
    EXIT_CODE,
    UNVERSIONED,
    MigrationNeeded,
    NewerSchema,
    read_stamp,
)
from fulfillment.ledger.scripts import migration_source
from tests.support.redis_dump import dump_all

# A test step: count each record's visits and mark it migrated (idempotent but for the count).
MARK = migration_source(
    """
return done(each_record(function(member, keys)
  redis.call('HINCRBY', keys[1], 'visits', 1)
  if redis.call('HGET', keys[1], 'migrated') == '1' then return false end
  redis.call('HSET', keys[1], 'migrated', '1')
  return true
end))
"""
)


def record_key(keys: Keys, ref: Ref) -> list[str]:
    return [keys.record(ref)]


def mark_step(keys_of: Any = record_key) -> RecordStep:
    return RecordStep("mark every record", MARK, keys_of, per_record=1)


TO_2 = Migration(2, "mark every record", online=True, steps=(mark_step(),))
TO_3 = Migration(3, "nothing to rewrite", online=True)
OFFLINE_3 = Migration(3, "a change older processes misread", online=False)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def ledger(client: redis.Redis) -> Ledger:
    return Ledger(client)


def notice(request_id: str | None = None) -> Notice:
    rid = request_id or f"req-{time.monotonic_ns()}"
    return Notice(rid, f"{rid}-d", f"{rid}-a", "NetNew", False, "{}")


def old_records(client: redis.Redis, count: int) -> list[Ref]:
    """``count`` records as any release writes them, index entries included (no stamp)."""
    pipe = client.pipeline(transaction=False)
    refs = [Ref.parse(f"pax8:req-{i:04d}") for i in range(count)]
    for i, ref in enumerate(refs):
        pipe.hset(f"ff:req:{ref.member}", mapping={"id": ref.id, "state": "reported"})
        pipe.zadd("ff:index", {ref.member: i})
    pipe.execute()
    return refs


def visits(client: redis.Redis, refs: list[Ref]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for ref in refs:
        pipe.hget(f"ff:req:{ref.member}", "visits")
    return [int(v or 0) for v in pipe.execute()]


# -- the stamp -------------------------------------------------------------------------------


def test_this_release_has_a_migration_to_every_schema_up_to_its_own() -> None:
    assert [m.to for m in MIGRATIONS] == list(range(2, LEDGER_SCHEMA + 1))
    assert UNVERSIONED == 1  # 0.1.0's data is schema 1: the first migration is to 2


def test_an_empty_redis_is_stamped_with_this_release_schema(
    ledger: Ledger, client: redis.Redis
) -> None:
    assert read_stamp(ledger).schema is None
    outcome = migrate(ledger)
    assert outcome.stamped and outcome.version == LEDGER_SCHEMA and outcome.migrated == ()
    stamp = client.hgetall("ff:schema")
    assert stamp["version"] == str(LEDGER_SCHEMA) and stamp["release"] == __version__
    assert stamp["from"] == "empty" and float(stamp["at"]) > time.time() - 60
    assert set(client.keys("*")) == {"ff:schema"}  # the stamp and nothing else (the lock gone)


def test_data_of_0_1_0_is_adopted_as_schema_1_and_not_rewritten(
    ledger: Ledger, client: redis.Redis
) -> None:
    ledger.accept(notice("seen-by-0-1-0"))
    before = dump_all(client)
    outcome = migrate(ledger)
    assert outcome.before.schema == UNVERSIONED and outcome.before.version is None
    assert outcome.stamped and outcome.version == LEDGER_SCHEMA
    assert client.hget("ff:schema", "from") == "unversioned"
    after = dump_all(client)
    assert after.pop("ff:schema")
    assert after == before  # every other key as it was, byte for byte


def test_current_data_is_read_and_nothing_written(ledger: Ledger, client: redis.Redis) -> None:
    ledger.accept(notice())
    migrate(ledger)
    before = dump_all(client)
    outcome = migrate(ledger)
    assert not outcome.stamped and outcome.migrated == () and outcome.version == LEDGER_SCHEMA
    assert dump_all(client) == before


def test_data_of_a_newer_schema_is_refused_with_one_line_and_nothing_written(
    ledger: Ledger, client: redis.Redis
) -> None:
    ledger.accept(notice())
    client.hset("ff:schema", mapping={"version": LEDGER_SCHEMA + 1, "release": "9.1.0"})
    before = dump_all(client)
    with pytest.raises(NewerSchema) as refused:
        migrate(ledger)
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(
        f"this Redis holds data of schema {LEDGER_SCHEMA + 1}, stamped by 9.1.0; "
        f"this release ({__version__}) reads up to {LEDGER_SCHEMA}"
    )
    with pytest.raises(NewerSchema):
        migrate(ledger, offline=True)  # fulfill migrate refuses it the same way
    assert dump_all(client) == before


def test_a_stamp_names_its_release_only_when_it_looks_like_one(
    ledger: Ledger, client: redis.Redis
) -> None:
    client.hset("ff:schema", mapping={"version": 99, "release": "\x1b[31mred;rm -rf"})
    with pytest.raises(NewerSchema) as refused:
        migrate(ledger)
    assert "stamped by" not in str(refused.value) and "\x1b" not in str(refused.value)


# -- migrations (a chain of test migrations to schemas 2 and 3) ------------------------------


def test_a_chain_of_migrations_runs_in_batches_and_stamps_each_version(
    ledger: Ledger, client: redis.Redis
) -> None:
    refs = old_records(client, 300)  # past 128 members the index is scanned in pages
    outcome = migrate(ledger, target=3, migrations=[TO_2, TO_3], batch=50)
    assert outcome.migrated == (2, 3) and outcome.changed == 300
    assert visits(client, refs) == [1] * 300
    stamp = client.hgetall("ff:schema")
    assert stamp["version"] == "3" and stamp["from"] == "2"
    assert not client.exists("ff:migration", "ff:lock:migrate")
    again = migrate(ledger, target=3, migrations=[TO_2, TO_3], batch=50)
    assert again.migrated == () and not again.stamped  # run twice: the second does nothing
    assert visits(client, refs) == [1] * 300


def test_an_interrupted_migration_resumes_after_the_last_batch_it_finished(
    ledger: Ledger, client: redis.Redis
) -> None:
    refs = old_records(client, 300)
    calls = {"n": 0}

    def crash_in_the_third_batch(keys: Keys, ref: Ref) -> list[str]:
        calls["n"] += 1
        if calls["n"] > 2 * 50 + 10:
            raise RuntimeError("killed mid-migration")
        return record_key(keys, ref)

    crashing = Migration(2, "mark", online=True, steps=(mark_step(crash_in_the_third_batch),))
    with pytest.raises(RuntimeError, match="killed"):
        migrate(ledger, target=2, migrations=[crashing], batch=50)
    done_before = sum(visits(client, refs))
    assert 0 < done_before < 300
    assert client.hget("ff:migration", "to") == "2" and client.hget("ff:migration", "cursor")
    assert read_stamp(ledger).version is None  # not stamped: still schema 1

    outcome = migrate(ledger, target=2, migrations=[TO_2], batch=50)
    assert outcome.migrated == (2,)
    assert outcome.changed == 300 - done_before  # the rest, not the batches already done
    assert visits(client, refs) == [1] * 300
    assert client.hget("ff:schema", "version") == "2"


def test_a_migration_left_by_a_dead_runner_is_resumed_once_its_lock_expires(
    ledger: Ledger, client: redis.Redis
) -> None:
    refs = old_records(client, 20)
    client.set("ff:lock:migrate", "a-runner-that-died", px=600)
    started = time.monotonic()
    outcome = migrate(ledger, target=2, migrations=[TO_2], lock_seconds=5)
    assert outcome.waited and outcome.migrated == (2,)
    assert time.monotonic() - started >= 0.5
    assert visits(client, refs) == [1] * 20


def test_processes_starting_together_migrate_once(ledger: Ledger, client: redis.Redis) -> None:
    refs = old_records(client, 300)
    outcomes: list[Any] = []

    def start() -> None:
        c = redis.Redis(connection_pool=client.connection_pool)
        outcomes.append(migrate(Ledger(c), target=3, migrations=[TO_2, TO_3], batch=20))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 4
    assert sorted(len(o.migrated) for o in outcomes) == [0, 0, 0, 2]
    assert all(o.version == 3 for o in outcomes)
    assert visits(client, refs) == [1] * 300


def test_a_runner_that_lost_its_lock_writes_nothing_more(
    ledger: Ledger, client: redis.Redis
) -> None:
    refs = old_records(client, 300)
    _, first_page = client.zscan("ff:index", 0, count=50)  # ZSCAN's COUNT is a hint
    calls = {"n": 0}

    def steal_the_lock(keys: Keys, ref: Ref) -> list[str]:
        calls["n"] += 1
        if calls["n"] == len(first_page) + 5:  # in the second batch: as if this runner
            client.set("ff:lock:migrate", "another-runner", px=60_000)  # paused past its lock
        return record_key(keys, ref)

    stolen = Migration(2, "mark", online=True, steps=(mark_step(steal_the_lock),))
    with pytest.raises(LockLost):
        migrate(ledger, target=2, migrations=[stolen], batch=50)
    assert sum(visits(client, refs)) == len(first_page)  # the first batch only
    assert client.get("ff:lock:migrate") == "another-runner"  # not released by the loser
    assert read_stamp(ledger).version is None


def test_an_offline_migration_waits_for_fulfill_migrate(
    ledger: Ledger, client: redis.Redis
) -> None:
    old_records(client, 3)
    migrate(ledger, target=2, migrations=[TO_2])
    before = dump_all(client)
    with pytest.raises(MigrationNeeded) as needed:
        migrate(ledger, target=3, migrations=[TO_2, OFFLINE_3])
    assert "needs every older process stopped" in str(needed.value)
    assert "fulfill migrate" in str(needed.value)
    assert dump_all(client) == before
    outcome = migrate(ledger, target=3, migrations=[TO_2, OFFLINE_3], offline=True)
    assert outcome.migrated == (3,)


def test_without_migrate_at_start_only_a_stamp_is_written(
    ledger: Ledger, client: redis.Redis
) -> None:
    refs = old_records(client, 3)
    before = dump_all(client)
    with pytest.raises(MigrationNeeded, match="LEDGER_MIGRATE_AT_START is off"):
        migrate(ledger, target=2, migrations=[TO_2], rewrite=False)
    assert dump_all(client) == before
    # Adopting 0.1.0's data at the schema it already has rewrites nothing: allowed.
    assert migrate(ledger, rewrite=False).stamped
    assert visits(client, refs) == [0, 0, 0]


# -- at the start of a process ------------------------------------------------------------------


def test_a_process_on_newer_data_prints_one_line_and_exits_4(
    ledger: Ledger, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    client.hset("ff:schema", "version", LEDGER_SCHEMA + 1)
    before = dump_all(client)
    codes: list[int] = []
    with pytest.raises(NewerSchema):
        check_at_start(ledger, migrate_at_start=True, exit=codes.append)
    assert codes == [EXIT_CODE]
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"fulfillment: this Redis holds data of schema {LEDGER_SCHEMA + 1};")
    assert dump_all(client) == before


def test_a_process_waits_for_redis_before_it_checks(tmp_path: Any) -> None:
    port = free_port()
    server = RedisServer(tmp_path / "late", port=port, appendonly=False)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            server.start()  # Redis comes up while the process waits

    try:
        outcome = check_at_start(Ledger(client), migrate_at_start=True, sleep=sleep)
        assert outcome.stamped and len(sleeps) >= 2
        assert client.hget("ff:schema", "version") == str(LEDGER_SCHEMA).encode()
    finally:
        client.close()
        server.stop()
