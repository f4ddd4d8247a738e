""" "Now" for usage reporting: the system clock, or (tests, demos) a time read from a file.

Every usage decision (which day's run this is, which periods are open, when the alert is
due, whether the cutoff passed, when a subscription became active or ended) asks the
:class:`Clock` built from the settings, and nothing else. ``USAGE_CLOCK_FILE`` names a file
holding an ISO 8601 time that every process (and the sandbox, ``--clock-file``) reads at
each call: a test writes the next day into it and a month passes in a minute. Unset (the
default, and the only sane production value) it is the system clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


class Clock:
    """The system clock (UTC)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


class FileClock(Clock):
    """The time written in a file (ISO 8601; naive means UTC), read at every call."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> datetime:
        """The file's time; the system's while the file is missing or unreadable."""
        try:
            return parse_time(self.path.read_text().strip())
        except (OSError, ValueError):
            return super().now()


class FixedClock(Clock):
    """Always the same time (a command run "as of" a moment, and unit tests)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The fixed time."""
        return self.at


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as aware UTC (``Z`` accepted, naive read as UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def clock_for(path: Path | None) -> Clock:
    """The clock ``USAGE_CLOCK_FILE`` asks for."""
    return FileClock(path) if path is not None else Clock()


def iso(moment: datetime) -> str:
    """``2026-03-01T02:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
