"""WORKER_POOL: its setting and concurrency default, the start-up check of the running pool,
the soft time limit under gevent, and connection pools sized for the concurrency."""

from __future__ import annotations

import time

import gevent
import httpx
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from config.settings import ConfigError, explicit_settings
from fulfillment.runtime.clients import pax8_client
from vendors.http import HttpAdapter
from worker.config import celery_config
from worker.pool import pool_problem, running_pool, soft_limit


def test_each_pool_has_its_own_concurrency_default_and_an_explicit_value_wins() -> None:
    assert explicit_settings().worker_pool == "prefork"
    assert explicit_settings().pool_concurrency == 2
    assert explicit_settings(worker_pool="gevent").pool_concurrency == 100
    assert explicit_settings(worker_pool="gevent", worker_concurrency=300).pool_concurrency == 300
    conf = celery_config(explicit_settings(worker_pool="gevent"))
    assert conf["worker_concurrency"] == 100 and "worker_pool" not in conf
    # kombu raises when its broker pool is empty, and every greenlet may ack at once.
    assert conf["broker_transport_options"]["max_connections"] > 100
    assert conf["broker_pool_limit"] >= 100


@pytest.mark.parametrize("value", ["eventlet", "threads", "solo", "GEVENT", ""])
def test_a_pool_other_than_prefork_or_gevent_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="WORKER_POOL"):
        explicit_settings(worker_pool=value)


def test_a_concurrency_out_of_bounds_is_refused() -> None:
    for value in (0, 1001):
        with pytest.raises(ConfigError, match="WORKER_CONCURRENCY"):
            explicit_settings(worker_concurrency=value)


def test_the_running_pool_must_be_the_one_the_settings_name() -> None:
    assert running_pool("prefork") == "prefork"
    assert running_pool("gevent") == "gevent"
    assert pool_problem(explicit_settings(), "prefork") is None
    problem = pool_problem(explicit_settings(worker_pool="prefork"), "gevent")
    assert problem is not None and "--pool prefork" in problem and "\n" not in problem
    # This test process is not patched by gevent: a gevent worker here would block.
    unpatched = pool_problem(explicit_settings(worker_pool="gevent"), "gevent")
    assert unpatched is not None and "not patched" in unpatched
    assert "runs the thread pool" in (pool_problem(explicit_settings(), "threads") or "")


def test_the_soft_limit_is_raised_in_the_greenlet_under_gevent_only() -> None:
    gevent_settings = explicit_settings(worker_pool="gevent")
    started = time.monotonic()
    with pytest.raises(SoftTimeLimitExceeded, match=r"soft time limit \(0.05s\)"):
        with soft_limit(gevent_settings, 0.05):
            gevent.sleep(2)  # a vendor call waiting on its socket
    assert time.monotonic() - started < 1
    with soft_limit(gevent_settings, 0.5):
        gevent.sleep(0.01)  # a call that ends in time: nothing raised, nothing left armed
    gevent.sleep(0.6)
    with soft_limit(explicit_settings(), 0.01):  # prefork: Celery's own signal does it
        gevent.sleep(0.05)


def test_one_pax8_connection_pool_per_process_sized_for_the_concurrency() -> None:
    settings = explicit_settings(
        worker_pool="gevent", pax8_client_id="id", pax8_client_secret="s" * 20
    )
    client = pax8_client(settings)
    try:
        pool = client._http._transport._pool  # httpx's own transport: one pool
        assert pool._max_connections == 100 and pool._max_keepalive_connections == 100
    finally:
        client.close()


def test_the_vendor_clients_pool_is_sized_for_the_concurrency() -> None:
    settings = explicit_settings(worker_pool="gevent", worker_concurrency=150)
    adapter = HttpAdapter(settings, url="http://127.0.0.1:9/orders")
    try:
        transport = adapter._http._transport
        assert isinstance(transport, httpx.HTTPTransport)
        assert transport._pool._max_keepalive_connections == 150
    finally:
        adapter.close()
