"""A Redis lock with an owner token, an expiry and a compare-and-delete release.

A holder that dies leaves the lock to expire (or, when its token is a stable owner id
such as a Celery task id, takes it back when that task is redelivered); a holder that
outlives the expiry cannot delete a lock someone else has taken since.
"""

from __future__ import annotations

import secrets
from types import TracebackType

import redis

from fulfillment.ledger.scripts import lua_source


class RedisLock:
    """``SET key token NX PX ttl``; release only if the token is still ours."""

    def __init__(
        self, client: redis.Redis, key: str, ttl_seconds: float, owner: str | None = None
    ) -> None:
        self.redis = client
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        # An owner (e.g. a task id) may take back its own lock after a crash; a random
        # token may not.
        self.token = owner or secrets.token_hex(16)
        self.held = False
        self._release = client.register_script(lua_source("lock_release", record=False))
        self._reclaim = client.register_script(lua_source("lock_acquire", record=False))

    def acquire(self) -> bool:
        """Take the lock if free, or if it is already ours; True if we hold it now."""
        self.held = bool(self._reclaim(keys=[self.key], args=[self.token, self.ttl_ms]))
        return self.held

    def release(self) -> bool:
        """Give the lock back; False if it had expired (and maybe been taken by another)."""
        if not self.held:
            return False
        self.held = False
        return bool(self._release(keys=[self.key], args=[self.token]))

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
