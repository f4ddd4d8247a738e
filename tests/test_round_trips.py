"""What one order costs Redis on the worker's path, counted exactly (``MONITOR``).

redis-server, the sandbox, the receiver (Procfile ``web``) and one worker (Procfile
``worker``, one pool process, the ``bench.null_vendor`` adapter: no vendor I/O of its own)
run as processes. A first order loads every script on the server and builds the worker's
services; the second is counted: every command a worker process sends that names the
order's record (its hash, attempts, history or report lock) is one ledger round trip (the
default settings pipeline nothing on that path). The figure is exact, so the test asserts
it: 3 (claim, which returns the record; finish, which also starts the report: takes the
report lock, reads the attempts and marks them ``posting``; settle, which gives the lock
back). It was 9 when issue 25 was filed, then 4 with the report started in a script
of its own (``docs/scaling.md``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import psutil
import pytest
import redis

from fulfillment.ledger.keys import Keys
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.scripts import LUA, lua_source
from tests.support.procs import wait_until
from tests.support.redis_monitor import Monitor, Seen
from tests.support.stack import Stack

LEDGER_ROUND_TRIPS = ["claim", "finish", "settle"]
"""The worker's ledger round trips for one order, in order."""

ACCEPT_COMMANDS = ["HGET", "HSETNX", "HSET", "LPUSH", "ZADD", "ZADD", "HSET", "LPUSH", "LTRIM"]
"""What the receiver's one round trip for a new order runs (``accept.lua``): read the
state, note the attempt, write the record, push the task message, enter the ``queued`` set
and the index, set the state, two history entries in one push, trim the history. It was 18
when the record passed through ``received`` in the same script."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("round-trips"),
        {"VENDOR_ADAPTER": "bench.null_vendor:NullVendor"},
        sandbox_options={"keep_alive": True},  # as Pax8: the connection-reuse test needs it
    )
    try:
        running.start_receiver()
        running.start_worker(concurrency=1)
        yield running
    finally:
        running.stop()


def _script_names() -> dict[str, str]:
    """EVALSHA's first argument → the script's name, for every script of the ledger."""
    names = {}
    for path in LUA.glob("*.lua"):
        for record in (True, False):
            source = lua_source(path.stem, record)
            names[hashlib.sha1(source.encode()).hexdigest()] = path.stem
    return names


def _order(stack: Stack, probe: redis.Redis) -> str:
    """Post one Pax8 order and wait until it is reported and its message acknowledged."""
    body = stack.sandbox_notification()
    request_id = str(body["provisionRequest"]["id"])
    response = stack.post_webhook(body)
    assert response.status_code == 202, response.text
    key = Keys().record(Ref(Scope.PAX8, request_id))
    wait_until(lambda: probe.hget(key, "state") == "reported", 30, message=stack.describe)
    # The acknowledgement follows everything the task did: once kombu's unacked hash is
    # empty, the order's commands are all in.
    wait_until(lambda: probe.hlen("unacked") == 0, 30, message=stack.describe)
    return request_id


def _label(seen: Seen, scripts: dict[str, str]) -> str:
    parts = seen.command.replace('"', "").split(" ")
    if parts[0].upper() == "EVALSHA":
        return scripts.get(parts[1], "unknown script")
    return parts[0].upper()


def _counted_order(stack: Stack) -> tuple[str, list[Seen], str]:
    """One order after a warm-up one (scripts loaded, the worker's services built): its
    request id, what Redis ran meanwhile, and the probe's own connection (to leave out)."""
    probe = redis.Redis.from_url(
        stack.redis_server.url, decode_responses=True, single_connection_client=True
    )
    try:
        probe_address = str(probe.client_info()["addr"])
        _order(stack, probe)
        monitor = Monitor(stack.redis_server.url)
        try:
            request_id = _order(stack, probe)
        finally:
            monitor.close()
    finally:
        probe.close()
    return request_id, monitor.seen, probe_address


def test_one_order_makes_three_ledger_round_trips(stack: Stack) -> None:
    request_id, monitored, probe_address = _counted_order(stack)

    scripts = _script_names()
    record_key = re.escape(Keys().record(Ref(Scope.PAX8, request_id)))
    naming = [
        seen
        for seen in monitored
        if seen.connection not in ("lua", probe_address) and re.search(record_key, seen.command)
    ]
    receivers = {s.connection for s in naming if _label(s, scripts) in ("accept", "mark_queued")}
    worker = [_label(s, scripts) for s in naming if s.connection not in receivers]
    assert worker == LEDGER_ROUND_TRIPS, [(s.connection, _label(s, scripts)) for s in naming]
    # All of them from one connection: the pool process's (no second client per order).
    assert len({s.connection for s in naming if s.connection not in receivers}) == 1


def test_one_webhook_is_one_round_trip_of_nine_commands(stack: Stack) -> None:
    request_id, monitored, probe_address = _counted_order(stack)

    scripts = _script_names()
    seen = [s for s in monitored if s.connection != probe_address]
    record_key = Keys().record(Ref(Scope.PAX8, request_id))
    accepts = [
        index
        for index, s in enumerate(seen)
        if _label(s, scripts) == "accept" and record_key in s.command
    ]
    assert len(accepts) == 1, [(s.connection, s.command[:80]) for s in seen]
    (at,) = accepts
    receiver = seen[at].connection
    # The receiver's only command for the webhook.
    sent = [_label(s, scripts) for s in seen if s.connection == receiver]
    assert sent == ["accept"], sent
    # What ran inside it: the script's commands follow its call in MONITOR's order.
    inside = []
    for entry in seen[at + 1 :]:
        if entry.connection != "lua":
            break
        inside.append(entry.command.split(" ")[0].strip('"').upper())
    assert inside == ACCEPT_COMMANDS, inside


def _sandbox_connections(stack: Stack) -> set[tuple[str, int]]:
    """The local addresses of the pool process's TCP connections to the sandbox."""
    (worker,) = [proc for proc in stack.procs if proc.name == "worker"]
    port = int(stack.sandbox.url.rsplit(":", 1)[1])
    found = set()
    for child in stack.pool_children(worker):
        for conn in psutil.Process(child).net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED:
                found.add((conn.laddr.ip, conn.laddr.port))
    return found


def test_results_are_posted_on_one_kept_connection(stack: Stack) -> None:
    """The sandbox keeps connections open, as Pax8 does, and the worker's Pax8 client (one
    per process) posts every result on the connection it already has."""
    probe = redis.Redis.from_url(stack.redis_server.url, decode_responses=True)
    try:
        _order(stack, probe)
        first = _sandbox_connections(stack)
        _order(stack, probe)
        _order(stack, probe)
        assert len(first) == 1, first
        assert _sandbox_connections(stack) == first
    finally:
        probe.close()


def test_the_worker_logs_state_lines_not_celerys_per_task_lines(stack: Stack) -> None:
    """At INFO an order's lines are the state lines (with the task id); Celery's "received"
    and "succeeded" lines, which repeat them, are left to DEBUG (config/logging.py)."""
    probe = redis.Redis.from_url(stack.redis_server.url, decode_responses=True)
    try:
        request_id = _order(stack, probe)
    finally:
        probe.close()
    (worker,) = [proc for proc in stack.procs if proc.name == "worker"]
    lines = [line for line in worker.log(tail=10_000_000).splitlines() if request_id in line]
    events = [line.split("event=")[1].split()[0] for line in lines if "event=" in line]
    assert events == ["claimed", "vendor-ok", "result-posted"], lines
    log = worker.log(tail=10_000_000)
    assert "succeeded in" not in log and "] received" not in log
