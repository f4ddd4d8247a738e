"""The per-backend cap on vendor calls in flight (``VENDOR_MAX_IN_FLIGHT``) on a real
redis-server: the slot scripts, and a provisioning run that meets a full backend."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.slots import VendorSlots
from fulfillment.workflow.capacity import cap_of
from fulfillment.workflow.outcomes import Next
from fulfillment.workflow.provisioning import fulfil
from tests.unit.conftest import Pax8World, ServicesFactory, make_settings
from tests.unit.test_fulfilment import order_at_pax8, scripted
from vendors.base import Provisioned
from vendors.errors import TransientVendorError


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's server, emptied for this test."""
    out = redis.Redis.from_url(redis_url, decode_responses=True)
    yield out
    out.close()


def take(slots: VendorSlots, holder: str, cap: int = 2, lease: float = 30.0, **kw: Any) -> float:
    return slots.acquire("archive", holder, kw.get("waiter", f"pax8:{holder}"), cap, lease, 5.0)


def test_slots_are_taken_up_to_the_cap_then_each_asker_is_told_to_wait(
    client: redis.Redis,
) -> None:
    slots = VendorSlots(client)
    assert take(slots, "a") == 0.0
    assert take(slots, "b") == 0.0
    assert take(slots, "a") == 0.0  # a holder asking again keeps its slot, takes no other
    assert 0.05 <= take(slots, "c") <= 5.0
    assert slots.in_flight(["archive", "mail"]) == {"archive": 2, "mail": 0}
    assert slots.release("archive", "a", 30.0)
    assert not slots.release("archive", "a", 30.0)  # once
    assert take(slots, "c") == 0.0
    assert take(slots, "d", waiter="pax8:d") > 0
    # Another backend's slots are its own.
    assert slots.acquire("mail", "d", "pax8:d", 2, 30.0, 5.0) == 0.0


def test_a_slot_frees_itself_when_its_lease_the_call_deadline_ends(
    client: redis.Redis,
) -> None:
    slots = VendorSlots(client)
    assert take(slots, "a", cap=1, lease=0.3) == 0.0
    assert take(slots, "b", cap=1) > 0
    time.sleep(0.35)  # the lease is Redis's own clock: nothing to poll but the script
    assert take(slots, "b", cap=1) == 0.0
    assert not slots.release("archive", "a", 0.3)  # its holder comes back too late


def test_waits_grow_with_the_orders_waiting_so_all_ask_about_as_often_as_slots_free(
    client: redis.Redis,
) -> None:
    slots = VendorSlots(client)
    client.hset("ff:slots:archive:stats", "avg", 1000)  # calls take 1 s
    assert take(slots, "h1") == take(slots, "h2") == 0.0
    waits = [take(slots, f"w{i}", waiter=f"pax8:w{i}") for i in range(8)]
    for ahead, wait in enumerate(waits):
        # cap 2, 1 s calls: the n-th waiter comes back after about n / 4 s (± 25 % jitter),
        # at most the longest wait (5 s): together twice as often as slots free.
        expected = 1.0 * (ahead + 1) / 4
        assert 0.75 * expected - 0.01 <= wait <= min(5.0, 1.25 * expected + 0.01), (ahead, waits)
    # A waiter asking again goes behind the others, not in front of them.
    assert take(slots, "w0", waiter="pax8:w0") >= 0.75 * 8 / 4 - 0.01


def test_a_release_keeps_the_backends_mean_call(
    client: redis.Redis,
) -> None:
    slots = VendorSlots(client)
    assert take(slots, "a", lease=10.0) == 0.0
    time.sleep(0.2)
    slots.release("archive", "a", 10.0)
    assert 150 <= int(client.hget("ff:slots:archive:stats", "avg") or 0) <= 1000


def test_an_order_that_finds_its_backend_full_waits_in_the_queue_spending_nothing(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = scripted(make_services, Provisioned(), vendor_max_in_flight=1)
    request_id, detail, _ = order_at_pax8(pax8, services)
    ref = Ref(Scope.PAX8, request_id)
    # Another worker's call holds the one slot of the default route's backend.
    assert services.slots.acquire("default", "other/1", "pax8:x", 1, 30.0, 5.0) == 0.0

    outcome = fulfil(services, ref, detail, "t-1")
    assert outcome.next is Next.RETRY and 0.05 <= outcome.countdown <= 30.0
    record = services.ledger.get(ref)
    assert record is not None and record.state == "queued" and record.retries == 0
    assert record.claims == 0

    services.slots.release("default", "other/1", 30.0)
    assert fulfil(services, ref, detail, "t-2").next is Next.DONE
    assert services.ledger.get(ref).state == "reported"  # type: ignore[union-attr]
    assert services.slots.in_flight(["default"]) == {"default": 0}  # given back


def test_the_slot_is_given_back_when_the_call_fails(
    make_services: ServicesFactory, pax8: Pax8World
) -> None:
    services = scripted(
        make_services, TransientVendorError("vendor answered 503"), vendor_max_in_flight=1
    )
    request_id, detail, _ = order_at_pax8(pax8, services)
    outcome = fulfil(services, Ref(Scope.PAX8, request_id), detail, "t-1")
    assert outcome.next is Next.RETRY and "503" in outcome.reason
    assert services.slots.in_flight(["default"]) == {"default": 0}


def test_without_a_cap_no_slot_key_is_written(
    make_services: ServicesFactory, pax8: Pax8World, client: redis.Redis
) -> None:
    services = scripted(make_services, Provisioned())
    request_id, detail, _ = order_at_pax8(pax8, services)
    assert fulfil(services, Ref(Scope.PAX8, request_id), detail, "t-1").next is Next.DONE
    assert not client.keys("ff:slots:*")


def test_a_routes_max_in_flight_overrides_the_setting_per_backend(
    redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        textwrap.dedent(
            """
            default_route = "mail"
            [routes.archive]
            adapter = "example"
            max_in_flight = 5
            [routes.archive.simulation]
            max_in_flight = 0
            [routes.mail]
            adapter = "example"
            """
        )
    )
    settings = make_settings(redis_url, vendor_routes=str(path), vendor_max_in_flight=2)
    assert cap_of(settings, "archive", simulation=False) == 5
    assert cap_of(settings, "archive", simulation=True) == 0  # no cap for its simulation
    assert cap_of(settings, "mail", simulation=False) == 2  # VENDOR_MAX_IN_FLIGHT
    assert cap_of(make_settings(redis_url), "default", simulation=False) == 0


def test_a_slot_redis_could_not_take_back_does_not_change_the_orders_outcome(
    make_services: ServicesFactory, pax8: Pax8World, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = scripted(make_services, Provisioned(), vendor_max_in_flight=1)
    request_id, detail, _ = order_at_pax8(pax8, services)

    def lost(*_: Any) -> bool:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(services.slots, "release", lost)
    ref = Ref(Scope.PAX8, request_id)
    assert fulfil(services, ref, detail, "t-1").next is Next.DONE
    assert services.ledger.get(ref).state == "reported"  # type: ignore[union-attr]
    # The slot stays taken until its lease (the call's deadline) ends.
    assert services.slots.in_flight(["default"]) == {"default": 1}
