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
    limit: float | None = None,
) -> float:
    """Seconds to wait before retry number ``retries + 1``.

    "Equal jitter": half the exponential step (capped at ``cap``) plus a random share of
    the other half, so a crowd of failed tasks spreads out but none retries at once. A
    server's Retry-After is a floor, honoured up to ``limit`` (the longest countdown the
    settings allow below Redis's visibility timeout: a longer one would be redelivered
    early); without a ``limit`` it is capped at ``cap`` too.
    """
    step = min(cap, base * float(2 ** max(0, retries)))
    delay = step / 2 + rng() * step / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap if limit is None else limit))
    return float(delay)
