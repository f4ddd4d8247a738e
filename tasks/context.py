"""The collaborators a task needs, built once per worker process (after the fork)."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from config.settings import Settings
from fulfillment.clients import pax8_client, redis_client
from fulfillment.ledger import Ledger
from fulfillment.provisioning import RetryPolicy
from pax8.client import Pax8Client
from vendors.loader import Adapters
from worker.app import app, settings
from worker.publish import CeleryPublisher


@dataclass
class Context:
    """Settings, clients, ledger, adapters and the publisher of one process."""

    settings: Settings
    redis: redis.Redis
    ledger: Ledger
    pax8: Pax8Client
    adapters: Adapters
    publisher: CeleryPublisher
    policy: RetryPolicy

    def close(self) -> None:
        """Release connections and adapter resources."""
        self.adapters.close()
        self.pax8.close()
        self.redis.close()


_context: Context | None = None


def build_context(settings: Settings) -> Context:
    """Build every collaborator from ``settings``."""
    client = redis_client(settings, socket_timeout=10.0)
    return Context(
        settings=settings,
        redis=client,
        ledger=Ledger(client),
        pax8=pax8_client(settings),
        adapters=Adapters(settings),
        publisher=CeleryPublisher(app),
        policy=RetryPolicy(
            max_retries=settings.provision_max_retries,
            backoff_base=settings.retry_backoff_seconds,
            backoff_cap=settings.retry_backoff_max_seconds,
            # A claim outlives the task's hard limit: past it the holder is surely gone.
            lease_seconds=settings.task_time_limit_seconds + 30,
            max_claims=settings.max_deliveries,
            countdown_limit=settings.max_countdown_seconds,
        ),
    )


def context() -> Context:
    """This process's context, built on first use."""
    global _context
    if _context is None:
        _context = build_context(settings)
    return _context


def reset_context() -> None:
    """Close and forget the context (after a fork, or at process exit)."""
    global _context
    if _context is not None:
        try:
            _context.close()
        finally:
            _context = None
