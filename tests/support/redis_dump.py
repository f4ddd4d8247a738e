"""Every key of a Redis as ``DUMP`` serializes it: to show that something touched nothing."""

from __future__ import annotations

from typing import Any

import redis


def dump_all(client: redis.Redis) -> dict[str, bytes]:
    """key → its ``DUMP`` (type, value and encoding; not its time to live), for every key."""
    out: dict[str, bytes] = {}
    for key in client.scan_iter(count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        value: Any = client.dump(name)  # redis-py never decodes a DUMP
        if value is not None:
            out[name] = bytes(value)
    return out
