"""Vendor adapters for tests, loaded by workers through ``VENDOR_ADAPTER=package.module:Class``.

They keep what they saw in the worker's Redis (``REDIS_URL``), so a test process can
count calls across worker processes, restarts and kills.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time

import redis

from config.settings import Settings
from vendors.base import Order, Provisioned, VendorAdapter
from vendors.errors import PermanentVendorError
from vendors.example import ExampleAdapter

CALLS_KEY = "test:adapter:calls"


class _Recording(VendorAdapter):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        url = settings.redis_url if settings else "redis://localhost:6379/0"
        self.redis = redis.Redis.from_url(url, decode_responses=True)

    @property
    def call_deadline_seconds(self) -> float | None:
        """``TEST_ADAPTER_CALL_DEADLINE_SECONDS`` when set (a short wait after a kill), else
        the task's hard limit."""
        value = os.environ.get("TEST_ADAPTER_CALL_DEADLINE_SECONDS")
        return float(value) if value else None

    def _record(self, order: Order, what: str) -> int:
        entry = {
            "adapter": type(self).__name__,
            "what": what,
            "requestId": order.request_id,
            "type": order.type.value,
            "simulation": order.is_simulation,
            "key": order.idempotency_key,
            "pid": os.getpid(),
            "at": time.time(),
            "route": self.backend.route if self.backend else "",
        }
        return int(self.redis.rpush(CALLS_KEY, json.dumps(entry)))

    def close(self) -> None:
        self.redis.close()


class RecordingAdapter(_Recording):
    """Succeeds for every type, recording each call."""

    def handle(self, order: Order) -> Provisioned:
        self._record(order, "provisioned")
        return Provisioned(subscription_id=f"rec-{order.request_id[:8]}", metadata={"by": "rec"})


class KillerAdapter(_Recording):
    """Kills its own worker process on every call: a poison order."""

    def handle(self, order: Order) -> Provisioned:
        self._record(order, "killed")
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class SlowAdapter(_Recording):
    """Takes ``SLOW_ADAPTER_SECONDS`` (default 5) per order, recording start and end."""

    def handle(self, order: Order) -> Provisioned:
        self._record(order, "started")
        time.sleep(float(os.environ.get("SLOW_ADAPTER_SECONDS", "5")))
        self._record(order, "provisioned")
        return Provisioned(subscription_id=f"slow-{order.request_id[:8]}")


class BuggyAdapter(_Recording):
    """Raises an unexpected exception: a bug, not a vendor refusal."""

    def handle(self, order: Order) -> Provisioned:
        self._record(order, "bug")
        raise KeyError("tenant_id")


def calls(
    client: redis.Redis, request_id: str | None = None, what: str | None = None
) -> list[dict]:
    """The recorded calls, optionally for one request and one kind."""
    entries = [json.loads(e) for e in client.lrange(CALLS_KEY, 0, -1)]
    return [
        e
        for e in entries
        if (request_id is None or e["requestId"] == request_id)
        and (what is None or e["what"] == what)
    ]


class LeakyAdapter(_Recording):
    """Fails the way careless vendor SDKs do: the credential in the error text and the log."""

    def handle(self, order: Order) -> Provisioned:
        self._record(order, "leak")
        token = self.settings.vendor_http_token if self.settings else None
        secret = token.get_secret_value() if token else "none"
        logging.getLogger("vendor.sdk").error("request failed; sent Authorization: %s", secret)
        raise RuntimeError(f"vendor answered 500 to a call with Authorization: Bearer {secret}")


class NoChangeProductAdapter(ExampleAdapter):
    """The example vendor, except that it refuses every ChangeProduct (``fulfill certify``
    must name that type, and still pass the others of the subscription's sequence)."""

    def change_product(self, order: Order) -> Provisioned:
        raise PermanentVendorError(
            "This subscription cannot move to another product; cancel it and order the new "
            "product instead."
        )
