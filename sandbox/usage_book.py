"""The sandbox's usage state: its clock, the lines posted and the rate window (no Flask).

Kept apart from the routes (:mod:`sandbox.usage`) so :mod:`sandbox.context` can build it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# -- the clock -------------------------------------------------------------------------------


def clock_from(path: str | None) -> Callable[[], datetime]:
    """The usage clock: the system's, or the time a file says (read at every call)."""
    if path is None:
        return lambda: datetime.now(UTC)
    file = Path(path)

    def read() -> datetime:
        try:
            return parse_time(file.read_text().strip())
        except (OSError, ValueError):
            return datetime.now(UTC)  # no file yet: the real time

    return read


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; a naive one is UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def period_start(period: str) -> datetime:
    """00:00 UTC on the first day of ``yyyy-MM``."""
    year, month = (int(part) for part in period.split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


def period_cutoff(period: str) -> datetime:
    """When Pax8 stops taking usage for ``period``: 00:00 UTC on the 3rd of the next month."""
    start = period_start(period)
    following = (start + timedelta(days=32)).replace(day=1)
    return following + timedelta(days=2)


# -- the book --------------------------------------------------------------------------------


@dataclass
class _Summary:
    days: dict[date, list[dict[str, Any]]] = field(default_factory=dict)

    def billed(self) -> tuple[date, list[dict[str, Any]]] | None:
        if not self.days:
            return None
        day = max(self.days)
        return day, self.days[day]


@dataclass
class UsageBook:
    """Every usage line posted, per environment, subscription, period and summaryKey."""

    rate_limit: int
    rate_window: float
    clock: Callable[[], datetime]
    monotonic: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _data: dict[tuple[str, str, str], dict[str, _Summary]] = field(default_factory=dict)
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    def admit(self, env: str) -> float | None:
        """Count one post against the rate limit; the seconds to wait when over it."""
        now = self.monotonic()
        with self._lock:
            window = self._recent.setdefault(env, deque())
            while window and window[0] <= now - self.rate_window:
                window.popleft()
            if len(window) >= self.rate_limit:
                self._count("rate_limited")
                return window[0] + self.rate_window - now
            window.append(now)
            return None

    def post(
        self, env: str, subscription: str, period: str, lines: list[dict[str, Any]], overwrite: bool
    ) -> date:
        """Store one accepted post; the usage date it counts for."""
        today = self.clock().date()
        with self._lock:
            summaries = self._data.setdefault((env, subscription, period), {})
            for key in dict.fromkeys(line["summaryKey"] for line in lines):
                mine = [dict(line) for line in lines if line["summaryKey"] == key]
                summary = summaries.setdefault(key, _Summary())
                if overwrite or today not in summary.days:
                    summary.days[today] = mine
                else:
                    summary.days[today].extend(mine)
            self._count("posts")
            self._count("lines", len(lines))
            self._count("appends" if not overwrite else "overwrites")
        return today

    def billed(self, env: str, subscription: str, period: str) -> dict[str, dict[str, Any]]:
        """What Pax8 would bill now: per summaryKey, the lines of its latest day."""
        with self._lock:
            summaries = self._data.get((env, subscription, period), {})
            out = {}
            for key, summary in summaries.items():
                found = summary.billed()
                if found is not None:
                    day, lines = found
                    out[key] = {"usageDate": day.isoformat(), "lines": [dict(x) for x in lines]}
            return out

    def everything(self, env: str, period: str | None) -> dict[str, dict[str, Any]]:
        """Every subscription's billed lines in ``env`` (one period, or all)."""
        with self._lock:
            keys = [k for k in self._data if k[0] == env and (period is None or k[2] == period)]
        out: dict[str, dict[str, Any]] = {}
        for _, subscription, each in keys:
            out.setdefault(subscription, {})[each] = self.billed(env, subscription, each)
        return out

    def refused(self, reason: str) -> None:
        """Count a post refused with a 4xx, by reason."""
        with self._lock:
            self._count(f"refused_{reason}")

    def _count(self, name: str, amount: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + amount

    def clear(self) -> None:
        """Forget every line, counter and rate window."""
        with self._lock:
            self._data.clear()
            self._recent.clear()
            self.stats.clear()
