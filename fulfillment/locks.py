"""A Redis lock with an owner token, an expiry and a compare-and-delete release.

A holder that dies leaves the lock to expire; a holder that outlives the expiry cannot
delete a lock someone else has taken since (the token does not match).
"""

from __future__ import annotations

import secrets
from types import TracebackType

import redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLock:
    """``SET key token NX PX ttl``; release only if the token is still ours."""

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        self.redis = client
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = secrets.token_hex(16)
        self.held = False
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lock if free; True if we hold it now."""
        self.held = bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
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
