"""Billing periods (``yyyy-MM``, a calendar month in UTC) and the times that matter to them.

* Pax8 charges three days after a period ends, on its latest totals, and takes no usage
  for it after "midnight UTC on the 2nd" of the next month (``usage-overview``): read here
  as the midnight that ends the 2nd, :func:`cutoff`, 00:00 UTC on the 3rd; the daily run
  posts the closing totals on the 1st and again on the 2nd;
* :func:`deadline`: when a period without its closing totals raises the alert, the 1st at
  ``USAGE_OVERDUE_AFTER_HOURS`` (12: noon UTC), a day and a half before the cutoff.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
CUTOFF_AFTER = timedelta(days=2)
"""From a period's end to Pax8's cutoff: the 1st and the 2nd of the next month."""


def check_period(text: str) -> str:
    """``text`` if it is ``yyyy-MM``; ValueError otherwise."""
    if not PERIOD.fullmatch(text):
        raise ValueError(f"billing period must be yyyy-MM, got {text!r}")
    return text


def period_of(moment: datetime | date) -> str:
    """The period ``moment`` falls in."""
    return f"{moment.year:04d}-{moment.month:02d}"


def start(period: str) -> datetime:
    """00:00 UTC on the period's first day."""
    year, month = (int(part) for part in check_period(period).split("-"))
    return datetime(year, month, 1, tzinfo=UTC)


def end(period: str) -> datetime:
    """00:00 UTC on the first day of the next period (the end is exclusive)."""
    return (start(period) + timedelta(days=32)).replace(day=1)


def previous(period: str) -> str:
    """The period before."""
    return period_of(start(period) - timedelta(days=1))


def cutoff(period: str) -> datetime:
    """When Pax8 stops taking usage for ``period``: 00:00 UTC on the 3rd of the next month."""
    return end(period) + CUTOFF_AFTER


def deadline(period: str, after_hours: float) -> datetime:
    """When a period still without its closing totals raises the alert."""
    return end(period) + timedelta(hours=after_hours)


def is_open(period: str, now: datetime) -> bool:
    """Whether Pax8 takes usage for ``period`` at ``now`` (it began, its cutoff has not come)."""
    return start(period) <= now < cutoff(period)


def periods_to_post(now: datetime) -> list[str]:
    """What a run at ``now`` posts: the current period, and the previous one until its
    cutoff (its closing totals)."""
    current = period_of(now)
    earlier = previous(current)
    return [earlier, current] if now < cutoff(earlier) else [current]
