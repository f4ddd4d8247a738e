"""The broker channel builds one Redis client, not one per operation, against a real
redis-server (``worker/broker.py``, :class:`~worker.broker.OneClient`).

Kombu's own Redis channel builds a new ``redis.Redis`` object for every publish, fetch and
acknowledgement; the project's channel builds one and keeps it until kombu replaces the
connection pool. Counted exactly: a client construction is a call of the channel's
``_create_client``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis

from worker.broker import Transport

MESSAGES = 20
QUEUE = "broker-clients"


def _connection(redis_url: str, transport: type) -> Connection:
    return Connection(redis_url, transport=transport)


def _count_clients(channel: Any) -> list[Any]:
    """Record every client ``channel`` builds (besides the ones it built already)."""
    built: list[Any] = []
    create = channel._create_client

    def counting(*args: Any, **kwargs: Any) -> Any:
        client = create(*args, **kwargs)
        built.append(client)
        return client

    channel._create_client = counting
    return built


def _round_trip(connection: Connection, count: int) -> None:
    """Publish ``count`` messages, then fetch and acknowledge each (kombu's emulated acks:
    every delivery is recorded in and forgotten from its unacked hash)."""
    queue = connection.SimpleQueue(QUEUE)
    try:
        for number in range(count):
            queue.put({"n": number})
        for number in range(count):
            message = queue.get(timeout=5)
            assert message.payload == {"n": number}
            message.ack()
    finally:
        queue.close()


@pytest.fixture
def probe(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def test_kombus_own_channel_builds_a_client_for_every_operation(redis_url: str) -> None:
    # The defect the project's channel fixes, measured on kombu itself: if kombu stops
    # doing it, this test says so and the override can go.
    with _connection(redis_url, kombu_redis.Transport) as connection:
        channel = connection.default_channel
        built = _count_clients(channel)
        _round_trip(connection, MESSAGES)
    # A publish, a fetch, the delivery's record and its acknowledgement each build one.
    assert len(built) >= 3 * MESSAGES


def test_the_channel_builds_one_client_for_all_its_messages(
    redis_url: str, probe: redis.Redis
) -> None:
    with _connection(redis_url, Transport) as connection:
        channel = connection.default_channel
        built = _count_clients(channel)
        _round_trip(connection, MESSAGES)
        assert len(built) == 1
        assert built[0].connection_pool is channel.pool
    assert probe.llen(QUEUE) == 0 and probe.hlen("unacked") == 0


def test_a_killed_connection_is_replaced_under_the_same_client(
    redis_url: str, probe: redis.Redis
) -> None:
    with _connection(redis_url, Transport) as connection:
        channel = connection.default_channel
        built = _count_clients(channel)
        _round_trip(connection, 1)
        # Redis drops every connection but the probe's (a restart or a proxy's idle cut,
        # as the worker's pooled connections see it). Publishing goes on through the same
        # client: its pool drops the dead connection and opens a new one. (The consumer's
        # BRPOP connection is kombu's own, which Celery reconnects.)
        killed = probe.client_kill_filter(skipme=True)
        assert killed >= 2
        producer = connection.Producer()
        for number in range(3):
            producer.publish({"n": number}, routing_key=QUEUE)
        assert len(built) == 1
        assert probe.llen(QUEUE) == 3
    probe.delete(QUEUE)


def test_a_new_pool_gets_a_new_client(redis_url: str, probe: redis.Redis) -> None:
    # Kombu replaces its pools after a fork and when a channel fails to start; a Sentinel
    # channel's pool is the one that asks the sentinels for the master. The client must
    # follow the pool, never keep a disconnected one.
    with _connection(redis_url, Transport) as connection:
        channel = connection.default_channel
        built = _count_clients(channel)
        _round_trip(connection, 1)
        old_pool = channel.pool
        channel._disconnect_pools()
        _round_trip(connection, 2)
        assert len(built) == 2
        assert built[0].connection_pool is old_pool
        assert built[1].connection_pool is channel.pool is not old_pool
    assert probe.llen(QUEUE) == 0
