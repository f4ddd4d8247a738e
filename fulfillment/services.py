"""The collaborators of one process, built from one :class:`~config.settings.Settings`.

Every process kind (receiver, worker pool process, beat, the CLI) builds one
:class:`Services` and takes its Redis client, ledger, Pax8 client, vendor adapters,
publisher and policies from it, so two apps built from two settings can live in one
process, each on its own Redis. Each part is built on first use (the receiver never builds
a Pax8 client or an adapter, so it never loads httpx or vendor code) and may be given
ready-made instead (tests). The publisher needs a Celery app, which this package does not
know: whoever builds a Services passes a factory for it (:mod:`worker.services`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from config.settings import Settings
from fulfillment.intake.publisher import Publisher
from fulfillment.ledger import Ledger
from fulfillment.ledger.slots import VendorSlots
from fulfillment.runtime.clients import RedisUse, pax8_client, redis_client, usage_client
from fulfillment.workflow.policies import Policies, policies_from

if TYPE_CHECKING:
    from pax8.client import Pax8Client
    from pax8.usage import UsageClient
    from vendors.loader import Adapters


class Services:
    """Settings, Redis, ledger, Pax8 clients, adapters, publisher and policies of a process."""

    def __init__(
        self,
        settings: Settings,
        *,
        use: RedisUse = RedisUse.WORKER,
        publisher_factory: Callable[[], Publisher] | None = None,
        publisher: Publisher | None = None,
        redis_client: redis.Redis | None = None,
        pax8: Pax8Client | None = None,
        adapters: Adapters | None = None,
        usage: UsageClient | None = None,
    ) -> None:
        self.settings = settings
        self.use = use
        self.policies: Policies = policies_from(settings)
        self._publisher = publisher
        self._publisher_factory = publisher_factory
        self._redis = redis_client
        self._ledger: Ledger | None = None
        self._slots: VendorSlots | None = None
        self._pax8 = pax8
        self._usage = usage
        self._adapters = adapters

    @property
    def redis(self) -> redis.Redis:
        """The Redis client (one connection pool) of the ledger and locks."""
        if self._redis is None:
            self._redis = redis_client(self.settings, self.use)
        return self._redis

    @property
    def ledger(self) -> Ledger:
        """The ledger on :attr:`redis`."""
        if self._ledger is None:
            self._ledger = Ledger(
                self.redis,
                wait_replicas=self.settings.redis_wait_replicas,
                wait_timeout_ms=self.settings.redis_wait_timeout_ms,
            )
        return self._ledger

    @property
    def slots(self) -> VendorSlots:
        """The vendor-call slots of every backend (``VENDOR_MAX_IN_FLIGHT``), on :attr:`redis`."""
        if self._slots is None:
            self._slots = VendorSlots(self.redis)
        return self._slots

    @property
    def pax8(self) -> Pax8Client:
        """The Pax8 client with the configured credential sets."""
        if self._pax8 is None:
            self._pax8 = pax8_client(self.settings)
        return self._pax8

    @property
    def usage_pax8(self) -> UsageClient:
        """The Pax8 Usage API client (its own tokens, audience ``api://usage``)."""
        if self._usage is None:
            self._usage = usage_client(self.settings)
        return self._usage

    @property
    def adapters(self) -> Adapters:
        """The production and simulation vendor adapters (each built on first use)."""
        if self._adapters is None:
            from vendors.loader import Adapters  # vendor code only where orders are provisioned

            self._adapters = Adapters(self.settings)
        return self._adapters

    @property
    def publisher(self) -> Publisher:
        """Sends tasks by name, to the Redis of these settings."""
        if self._publisher is None:
            if self._publisher_factory is None:
                raise RuntimeError("these services were built without a publisher")
            self._publisher = self._publisher_factory()
        return self._publisher

    def close(self) -> None:
        """Release every connection and adapter built so far."""
        if self._adapters is not None:
            self._adapters.close()
        if self._pax8 is not None:
            self._pax8.close()
        if self._usage is not None:
            self._usage.close()
        if self._redis is not None:
            self._redis.close()
