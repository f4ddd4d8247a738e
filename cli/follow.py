"""Follow orders through the ledger and print each state change and each final result.

Used by ``fulfill simulate`` and ``fulfill dev``. Orders move fast (a whole
``received → … → reported`` often takes less than a poll), so the follower prints from
the record's history, not from snapshots: no state is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from cli.output import clip, external_ids, safe, styled_outcome
from fulfillment.ledger import Ledger, Record
from fulfillment.ledger.states import State
from pax8.models import ResultStatus

FINAL_STATES = ("reported", "dead")

# Events every order goes through; others (a retry, a replay, a death) are worth a note.
_ROUTINE = frozenset({"notified", "enqueued", "claimed", "vendor", "reported", "nothing-owed"})

Echo = Callable[[str], None]


@dataclass
class Followed:
    """One order being followed."""

    request_id: str
    label: str
    printed: int = 0
    record: Record | None = None
    done: bool = False

    @property
    def outcome(self) -> str:
        """``Success`` or ``Fail`` once reported, ``dead`` if given up, else ``""``."""
        if not self.done or self.record is None:
            return ""
        if self.record.state is State.DEAD:
            return "dead"
        return str(self.record.outcome or "")

    @property
    def message(self) -> str:
        """The Fail message (or why it died)."""
        if self.record is None:
            return ""
        if self.record.state is State.DEAD:
            return self.record.error
        return self.record.result_message if self.record.outcome is ResultStatus.FAIL else ""

    def result(self) -> dict[str, Any]:
        """JSON-ready result."""
        record = self.record
        return {
            "requestId": self.request_id,
            "label": self.label,
            "type": record.type if record else None,
            "state": record.state if record else None,
            "outcome": self.outcome or None,
            "externalIds": record.external_ids if record else {},
            "message": self.message or None,
            "route": (record.route or None) if record else None,
        }


def result_line(order: Followed) -> str:
    """``Success  subscription sub-…, company tn-…`` or ``Fail  <message>``."""
    outcome = order.outcome
    if outcome == "Success":
        ids = safe(external_ids(order.record.external_ids)) if order.record else ""
        return f"{styled_outcome('Success')}  {ids or '(no external ids)'}"
    if outcome:
        # The message is the vendor's (or Pax8's) text: escaped, then styled around.
        return f"{styled_outcome(outcome)}  {safe(order.message)}"
    state = order.record.state if order.record else "not in the ledger"
    return f"{styled_outcome('no result')}  still {state}"


class Follower:
    """Polls the ledger for a set of orders and prints their progress."""

    def __init__(
        self,
        ledger: Ledger,
        echo: Echo | None = None,
        interval: float = 0.2,
        on_done: Callable[[Followed], None] | None = None,
        backends: bool = False,
    ) -> None:
        self.ledger = ledger
        self.echo = echo
        self.interval = interval
        self.on_done = on_done
        self.backends = backends
        """Name each order's backend with its result (a routes file routes them)."""
        self.orders: dict[str, Followed] = {}
        self.width = 0

    def add(self, request_id: str, label: str) -> Followed:
        """Start following ``request_id``, printed as ``label``."""
        order = self.orders.setdefault(request_id, Followed(request_id, label))
        self.width = max(self.width, len(label))
        return order

    @property
    def pending(self) -> list[Followed]:
        """Orders without a final result yet."""
        return [order for order in self.orders.values() if not order.done]

    def _print(self, order: Followed, text: str) -> None:
        if self.echo is not None:
            self.echo(f"  {order.label.ljust(self.width)}  {text}")

    def poll(self) -> list[Followed]:
        """Look at every pending order once; return those that finished now."""
        finished = []
        for order in self.pending:
            record = self.ledger.get(order.request_id)
            if record is None:
                continue
            order.record = record
            history = self.ledger.history(order.request_id)
            fresh = history[order.printed :]
            if fresh:
                self._print(order, " -> ".join(_describe(entry) for entry in fresh))
            order.printed = max(order.printed, len(history))
            if record.state in FINAL_STATES:
                order.done = True
                where = f"[{safe(record.route)}] " if self.backends and record.route else ""
                self._print(order, where + result_line(order))
                finished.append(order)
                if self.on_done is not None:
                    self.on_done(order)
        return finished

    def wait(self, timeout: float, until: Callable[[], bool] | None = None) -> bool:
        """Poll until every order finished (or ``until()``); False at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if not self.pending or (until is not None and until()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.interval)

    def results(self) -> list[dict[str, Any]]:
        """JSON-ready results, with each order's history."""
        out = []
        for request_id, order in self.orders.items():
            data = order.result()
            data["history"] = self.ledger.history(request_id)
            out.append(data)
        return out


def _describe(entry: dict[str, Any]) -> str:
    state = str(entry.get("state", "?"))
    event = str(entry.get("event", ""))
    note = str(entry.get("note") or "")
    text = click.style(state, bold=True)
    if event and event not in _ROUTINE:
        text += f" ({safe(event)}: {safe(clip(note, 120))})" if note else f" ({safe(event)})"
    return text
