"""The hold-off a ``429`` puts on a whole Pax8 client (every greenlet or thread using it).

Until the answer's ``Retry-After`` has passed (at most ``longest``; :data:`HOLD_OFF_SECONDS`
when Pax8 gives none) no call of the client is sent: each raises
:class:`~pax8.errors.HeldOff` with the time left, which its caller handles as the 429 it
would otherwise have met. When the hold ends, one call goes first and the others keep
holding off until it is answered: another 429 holds again, anything else lets them all
through. So a rate-limited Pax8 sees about one request per client per hold-off, not one
from each of the hundreds of orders a gevent worker has in flight (those already sent when
the first 429 came back are answered as they are).

The state is the client's, one per process and API, not the deployment's: sharing it
through Redis would cost a round trip on every call. Under gevent nothing here yields, so
the checks and updates of one call are never interleaved with another's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pax8.errors import HeldOff, RateLimited

HOLD_OFF_SECONDS = 1.0
"""How long a client holds off after a 429 that gives no Retry-After."""


class HoldOff:
    """One client's hold-off after a 429."""

    def __init__(self, longest: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.longest = longest
        self.clock = clock
        self._until = 0.0  # the clock's time until which no call is sent
        self._probe = False  # a hold ended: the next call goes first, alone
        self._probing = False  # that call is on its way: the others still hold off

    def held_for(self) -> float:
        """Seconds still to hold off (0: the Retry-After has passed)."""
        return max(0.0, self._until - self.clock())

    def hold(self, error: RateLimited) -> None:
        """Hold every call off until ``error``'s Retry-After has passed."""
        seconds = HOLD_OFF_SECONDS if error.retry_after is None else error.retry_after
        until = self.clock() + min(max(0.0, seconds), self.longest)
        # Never shortened by a later 429 with a shorter wait (greenlets answer out of order).
        self._until = max(self._until, until)
        self._probe = True

    def admit(self, what: str) -> bool:
        """Whether the call ``what`` may be sent now (raises :class:`HeldOff` if not); True
        when it is the first call after a hold, which the others wait for: pass it to
        :meth:`answered` once it has its answer (or its error)."""
        held = self.held_for()
        if held > 0:
            raise HeldOff(f"Pax8 answered 429 lately: {what} not sent for {held:.1f}s", held)
        if self._probing:
            raise HeldOff(
                f"Pax8 answered 429 lately: {what} not sent until the first call after the "
                "hold-off is answered",
                HOLD_OFF_SECONDS,
            )
        if not self._probe:
            return False
        self._probe, self._probing = False, True
        return True

    def answered(self, first: bool) -> None:
        """A call :meth:`admit` let through has ended (``first``: what it answered)."""
        if first:
            self._probing = False
