"""What the checks run with: :class:`Doctor` (settings, services, workers, an HTTP client).

The CLI, the scheduled task and the console each build one from their own settings; the
checks only read through it. Celery's remote control is behind :class:`Workers` (this
package never imports Celery: ``worker/inspection.py`` implements it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from config.settings import Settings
from fulfillment.services import Services

INSPECT_TIMEOUT = 1.0
"""How long a broadcast to the workers waits for their replies."""

PROBE_TIMEOUT = 5.0
"""How long an HTTP probe (the receiver, the vendor) may take."""


class Workers(Protocol):
    """The running workers, as Celery's remote control sees them."""

    def queues(self, timeout: float) -> dict[str, list[str]]:
        """Worker name → the queues it consumes, for every worker that answered."""

    def clocks(self, timeout: float) -> dict[str, float | None]:
        """Worker name → its wall clock when it answered (None: it did not say)."""


@dataclass
class Doctor:
    """The collaborators of one doctor run."""

    settings: Settings
    services: Services
    """Redis, the ledger and the Pax8 client of these settings."""
    workers: Workers | None
    """None where no Celery app is at hand: the worker checks then say so."""
    http: httpx.Client = field(
        default_factory=lambda: httpx.Client(
            timeout=PROBE_TIMEOUT, follow_redirects=False, trust_env=False
        )
    )
    """For the probes of the receiver (``PUBLIC_URL``) and the vendor; never redirected."""
    inspect_timeout: float = INSPECT_TIMEOUT
    now: Callable[[], float] = time.time
    memo: dict[str, Any] = field(default_factory=dict)
    """What one check read and the next one needs (Pax8's configurations), read once."""

    def close(self) -> None:
        """Close the HTTP client (the services belong to whoever built them)."""
        self.http.close()
