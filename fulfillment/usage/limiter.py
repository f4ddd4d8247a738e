"""The rate limit every worker's usage posts share: ``USAGE_POSTS_PER_MINUTE`` (Pax8: at
most 1,000 posts a minute, ``how-to-use-usage-endpoints``).

A generic cell rate algorithm in Redis (``lua/ratelimit.lua``, on Redis's own clock): posts
leave evenly spaced, with bursts of at most a second's worth, whichever worker sends them;
so any window of W seconds holds at most ``burst + rate × W`` posts: 15 + 900 = 915 in a
minute with the default 900.
A worker whose turn is further off than its task may still run hands the job back instead
of sleeping past its time limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fulfillment.usage.context import UsageContext


class OutOfTime(Exception):
    """The next turn comes after the task's budget ends; ``wait``: seconds until it."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


def wait_for_turn(
    context: UsageContext,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait until a post may leave (counting it); the seconds waited."""
    policy, waited = context.policy, 0.0
    while True:
        wait = context.store.take_token(policy.posts_per_minute, policy.burst)
        if wait <= 0:
            return waited
        if deadline is not None and time.monotonic() + wait > deadline:
            raise OutOfTime(wait)
        sleep(wait)
        waited += wait
