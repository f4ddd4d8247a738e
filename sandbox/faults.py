"""Fault injection: rules, set at run time, that make Pax8 misbehave on purpose.

A rule matches HTTP requests to the Pax8 API and the token endpoint by method and an
``fnmatch`` glob on the path (``/v2/provision-requests/*/results``), or, with the path
``webhook``, every webhook delivery the sandbox makes. Control-plane requests (``/sandbox``)
never match: the tests must always be able to steer.

Actions:

- ``error``: answer ``status`` (and ``Retry-After`` if set) without doing the work;
  on a delivery: do not deliver, the attempt fails as if the vendor had answered ``status``.
- ``error_after``: do the work, then answer ``status`` anyway; on a delivery: deliver, then
  count it as failed (the vendor got it, Pax8 retries).
- ``delay`` / ``delay_after``: sleep ``seconds`` before / after doing the work (after: the
  work is stored even if the client times out).
- ``drop``: deliveries only: the notification is lost, the attempt Failed with errorDetail
  ``dropped``, and it is not retried.
- ``hold_ack``: deliveries only: deliver; a 2xx answer leaves the attempt ``Issued`` for
  ``seconds`` before it counts as ``Acknowledged`` (Pax8 flips the status when the 2xx
  reaches it, so a worker that answers faster than that sees its result refused).

For each request the first rule that matches, has firings left and wins its ``rate`` draw
fires, and only that one. ``times`` counts firings and is exact under concurrency: the check
and the decrement happen under one lock.
"""

import fnmatch
import random
import threading
from dataclasses import dataclass, replace
from typing import Any

from sandbox.errors import invalid

ACTIONS = ("error", "error_after", "delay", "delay_after", "drop", "hold_ack")
WEBHOOK_ONLY = ("drop", "hold_ack")
WEBHOOK = "webhook"
MAX_SECONDS = 3600.0
_KEYS = {"method", "path", "action", "status", "retry_after", "seconds", "rate", "times"}


@dataclass
class FaultRule:
    """One fault rule and how it has been used."""

    method: str
    path: str
    action: str
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    rate: float = 1.0
    times: int | None = None
    id: int = 0
    remaining: int | None = None
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule is about ``method path`` (``POST webhook`` for deliveries)."""
        if self.method not in ("*", method):
            return False
        if path == WEBHOOK or self.path == WEBHOOK:
            return path == self.path
        return fnmatch.fnmatchcase(path, self.path)

    def headers(self) -> dict[str, str]:
        """Headers of an injected error answer."""
        if self.retry_after is None:
            return {}
        # Retry-After takes whole seconds; round up so a client never comes back too early.
        return {"Retry-After": str(int(-(-self.retry_after // 1)))}

    def to_json(self) -> dict[str, Any]:
        """The rule as ``GET /sandbox/faults`` shows it."""
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "action": self.action,
            "status": self.status,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
            "rate": self.rate,
            "times": self.times,
            "remaining": self.remaining,
            "fired": self.fired,
        }


def parse_rule(data: Any, name: str = "rule") -> FaultRule:
    """A rule from its JSON form; a 400 names the bad field (``rules[2].action``)."""
    if not isinstance(data, dict):
        raise invalid(name, "must be an object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise invalid(f"{name}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(_KEYS))})")
    method = data.get("method", "*")
    if not isinstance(method, str) or not method:
        raise invalid(f"{name}.method", "must be an HTTP method or *")
    path = data.get("path")
    if not isinstance(path, str) or not path:
        raise invalid(f"{name}.path", "must be a glob on the request path, or webhook")
    action = data.get("action")
    if action not in ACTIONS:
        raise invalid(f"{name}.action", f"must be one of {', '.join(ACTIONS)}")
    if action in WEBHOOK_ONLY and path != WEBHOOK:
        raise invalid(
            f"{name}.action", f"{action} applies to webhook deliveries only (path webhook)"
        )
    status = data.get("status", 500)
    if not _is_int(status) or not 100 <= status <= 599:
        raise invalid(f"{name}.status", "must be an HTTP status code (100-599)")
    retry_after = data.get("retry_after")
    if retry_after is not None:
        retry_after = _number(retry_after, f"{name}.retry_after", 0.0, 86400.0)
    seconds = 0.0
    if action in ("delay", "delay_after", "hold_ack"):
        if data.get("seconds") is None:
            raise invalid(f"{name}.seconds", f"is required for {action}")
    if data.get("seconds") is not None:
        seconds = _number(data["seconds"], f"{name}.seconds", 0.0, MAX_SECONDS)
    rate = _number(data.get("rate", 1.0), f"{name}.rate", 0.0, 1.0)
    times = data.get("times")
    if times is not None and (not _is_int(times) or times < 1):
        raise invalid(f"{name}.times", "must be a positive integer or null (forever)")
    return FaultRule(
        method=method.upper(),
        path=path,
        action=action,
        status=status,
        retry_after=retry_after,
        seconds=seconds,
        rate=rate,
        times=times,
        remaining=times,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, name: str, low: float, high: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(name, f"must be a number between {low:g} and {high:g}")
    return float(value)


class FaultRegistry:
    """The current rules; thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._random = random.Random(seed)

    def replace(self, rules: list[FaultRule]) -> list[dict[str, Any]]:
        """Swap every rule for ``rules``."""
        with self._lock:
            self._rules = []
            for rule in rules:
                self._add(rule)
            return [r.to_json() for r in self._rules]

    def append(self, rule: FaultRule) -> dict[str, Any]:
        """Add one rule after the others."""
        with self._lock:
            return self._add(rule).to_json()

    def _add(self, rule: FaultRule) -> FaultRule:
        rule = replace(rule, id=self._next_id, remaining=rule.times, fired=0)
        self._next_id += 1
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules = []

    def snapshot(self) -> list[dict[str, Any]]:
        """Every rule with its remaining and fired counts."""
        with self._lock:
            return [r.to_json() for r in self._rules]

    def fire(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request (counted as fired), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or not rule.matches(method, path):
                    continue
                if rule.rate < 1.0 and self._random.random() >= rule.rate:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.fired += 1
                return replace(rule)
        return None
