"""A cap on the vendor calls in flight at one backend, across the whole deployment
(``VENDOR_MAX_IN_FLIGHT``): a Redis semaphore every worker shares.

A backend's holders are a sorted set of claim tokens scored by when each lease ends
(``lua/slot_acquire.lua``, ``lua/slot_release.lua``, on Redis's own clock). The lease is
the call's deadline, so a slot never outlives the call it was taken for: a worker killed
mid-call leaves its slot to free itself when the call could no longer be running, which is
also when the claim rules let another worker call again. A caller that finds every slot
taken is told how long to wait before asking again; the wait grows with the orders already
waiting, so that together they ask about twice as often as slots free (twice the cap
divided by the backend's mean call, which the release keeps), however long the queue
behind the cap: a freed slot is soon taken, and the asking costs the workers little.
"""

from __future__ import annotations

import random

import redis

from fulfillment.ledger.keys import Keys
from fulfillment.ledger.scripts import lua_source

SHORTEST_WAIT = 0.05
"""The shortest wait (seconds) before a refused order asks again."""


def backend_name(route: str, simulation: bool) -> str:
    """The name a backend's slots are kept under: its route, ``:sim`` for simulation's."""
    return f"{route}:sim" if simulation else route


class VendorSlots:
    """Take and give back a backend's vendor-call slots."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None) -> None:
        self.redis = client
        self.keys = keys or Keys()
        self._acquire = client.register_script(lua_source("slot_acquire", record=False))
        self._release = client.register_script(lua_source("slot_release", record=False))

    def acquire(
        self,
        backend: str,
        holder: str,
        waiter: str,
        cap: int,
        lease_seconds: float,
        longest_wait: float,
    ) -> float:
        """Take a slot of ``backend`` for ``holder`` (a claim token) for at most
        ``lease_seconds``: 0.0 when taken, else the seconds ``waiter`` (the order) should
        wait before asking again (at most ``longest_wait``)."""
        wait_ms = self._acquire(
            keys=self.keys.slots(backend),
            args=[
                holder,
                waiter,
                cap,
                max(1, int(lease_seconds * 1000)),
                int(SHORTEST_WAIT * 1000),
                max(int(SHORTEST_WAIT * 1000), int(longest_wait * 1000)),
                repr(random.random()),  # noqa: S311 - a jitter, not a secret
            ],
        )
        return int(wait_ms) / 1000

    def release(self, backend: str, holder: str, lease_seconds: float) -> bool:
        """Give ``holder``'s slot back; False if its lease had already ended."""
        holders, _, stats = self.keys.slots(backend)
        return bool(
            self._release(keys=[holders, stats], args=[holder, max(1, int(lease_seconds * 1000))])
        )

    def in_flight(self, backends: list[str]) -> dict[str, int]:
        """How many slots each of ``backends`` has taken now (leases not yet ended): Redis's
        clock, then one pipeline."""
        now = self.redis.time()
        now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
        pipe = self.redis.pipeline(transaction=False)
        for backend in backends:
            pipe.zcount(self.keys.slots(backend)[0], now_ms, "+inf")
        return {b: int(n) for b, n in zip(backends, pipe.execute(), strict=True)}
