"""Retry delays: exponential backoff with jitter, honouring a server's Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    retries: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``retries + 1``.

    "Equal jitter": half the exponential step plus a random share of the other half, so
    a crowd of failed tasks spreads out but none retries immediately. A Retry-After is
    a floor. Everything is capped at ``cap``, which the settings keep below Redis's
    visibility timeout (a countdown longer than that would be redelivered early).
    """
    step = min(cap, base * float(2 ** max(0, retries)))
    delay = step / 2 + rng() * step / 2
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(min(delay, cap))
