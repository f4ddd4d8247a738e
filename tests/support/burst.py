"""Play Pax8 delivering a burst of webhooks through a fault: paced, retried, every answer kept.

:class:`Burst` posts each notification at its due time (``rate`` per second) from a few
threads and, like Pax8, delivers a refused one (a 503, a dropped connection) again a little
later, while the others keep coming, until it is acknowledged or the deadline passes. Every
answer is kept with its time, so a test can say which webhooks got a 202 and when the
receiver refused, and measure the window of refusals around a failover.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.procs import wait_until
from tests.support.stack import HEADER, PROD_SECRET


@dataclass
class Delivery:
    """Every answer one notification got, in order: (monotonic time, status; 0 = none)."""

    request_id: str
    answers: list[tuple[float, int]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """Whether it got a 202 in the end."""
        return bool(self.answers) and self.answers[-1][1] == 202

    @property
    def refusals(self) -> list[tuple[float, int]]:
        """The answers other than 202."""
        return [answer for answer in self.answers if answer[1] != 202]


class Burst:
    """POST ``bodies`` to ``url`` at ``rate``/s from ``threads`` threads; redeliver refusals
    ``retry_every`` seconds later (new notifications do not wait for them)."""

    def __init__(
        self,
        url: str,
        bodies: Sequence[dict[str, Any]],
        *,
        rate: float,
        threads: int = 4,
        retry_every: float = 0.5,
        deadline: float = 120.0,
    ) -> None:
        self.url = url
        self.rate = rate
        self.retry_every = retry_every
        self.deadline = deadline
        self.bodies = {b["provisionRequest"]["id"]: b for b in bodies}
        self.deliveries = {request_id: Delivery(request_id) for request_id in self.bodies}
        self._due: list[tuple[float, int, str]] = []  # (due, order, request id): a heap
        self._order = 0
        self._outstanding = len(self.bodies)
        self._lock = threading.Condition()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.started = 0.0

    def start(self) -> Burst:
        """Start posting; returns at once."""
        self.started = time.monotonic()
        with self._lock:
            for index, request_id in enumerate(self.bodies):
                self._schedule(self.started + index / self.rate, request_id)
        for thread in self._threads:
            thread.start()
        return self

    def _schedule(self, due: float, request_id: str) -> None:
        heapq.heappush(self._due, (due, self._order, request_id))
        self._order += 1
        self._lock.notify()

    def _take(self) -> str | None:
        """The next notification due (waiting for it), or None when all are done."""
        with self._lock:
            while True:
                if self._outstanding == 0 or time.monotonic() > self.started + self.deadline:
                    self._lock.notify_all()
                    return None
                if self._due:
                    due, _, request_id = self._due[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._due)
                        return request_id
                    self._lock.wait(min(wait, 0.5))
                else:
                    self._lock.wait(0.5)  # the rest are in flight in other threads

    def _run(self) -> None:
        headers = {HEADER: PROD_SECRET, "Content-Type": "application/json"}
        with httpx.Client(timeout=10.0, headers=headers) as client:
            while (request_id := self._take()) is not None:
                try:
                    status = client.post(self.url, json=self.bodies[request_id]).status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    self.deliveries[request_id].answers.append((time.monotonic(), status))
                    if status == 202:
                        self._outstanding -= 1
                        self._lock.notify_all()
                    else:
                        self._schedule(time.monotonic() + self.retry_every, request_id)

    def sent(self) -> int:
        """Notifications posted at least once so far."""
        return sum(1 for d in self.deliveries.values() if d.answers)

    def acknowledged(self) -> int:
        """Notifications acknowledged (202) so far."""
        return sum(1 for d in self.deliveries.values() if d.accepted)

    def join(self) -> None:
        """Wait until every notification is acknowledged or given up on."""
        for thread in self._threads:
            thread.join(self.deadline + 30)

    def wait_acknowledged(self, count: int, timeout: float = 60.0) -> None:
        """Until at least ``count`` notifications got their 202."""
        wait_until(
            lambda: self.acknowledged() >= count,
            timeout,
            0.05,
            message=lambda: f"{self.acknowledged()} of {count} acknowledged",
        )

    # -- after the run -----------------------------------------------------------------

    def accepted_ids(self) -> list[str]:
        """Request ids whose webhook got a 202."""
        return [i for i, d in self.deliveries.items() if d.accepted]

    def refusals(self) -> list[tuple[float, int]]:
        """Every refusal (time, status) of the run, in time order."""
        return sorted(r for d in self.deliveries.values() for r in d.refusals)

    def refused_first(self) -> int:
        """Notifications whose first delivery was refused."""
        return sum(1 for d in self.deliveries.values() if d.answers and d.answers[0][1] != 202)
