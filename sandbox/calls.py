"""Counts of Pax8 API calls, by operation and by environment.

An operation is the method and the route template (``GET
/v2/provision-requests/{id}/attempts/latest``), so tests and benchmarks can tell how many
calls a client made of each kind without caring about ids. Control-plane calls are not
counted. Calls whose environment is unknown (no valid token) count in the totals only.
"""

import re
import threading
from collections import Counter
from typing import Any

from sandbox.config import ENVIRONMENTS

UNMATCHED = "<unmatched>"

# Flask rule variables -> the names the counters show.
_NAMES = {
    "request_id": "id",
    "provisioner_id": "id",
    "detail_id": "detailId",
    "attempt_id": "attemptId",
    "result_id": "resultId",
    "webhook_id": "webhookId",
}
_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def template(rule: str | None) -> str:
    """``/v2/provision-requests/<request_id>`` -> ``/v2/provision-requests/{id}``."""
    if rule is None:
        return UNMATCHED
    return _VARIABLE.sub(lambda m: "{" + _NAMES.get(m.group(1), m.group(1)) + "}", rule)


class CallCounter:
    """Thread-safe call counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: Counter[str] = Counter()
        self._by_env: dict[str, Counter[str]] = {env: Counter() for env in ENVIRONMENTS}

    def record(self, method: str, rule: str | None, environment: str | None) -> None:
        """Count one call of ``method`` on the route ``rule`` (a Flask rule string)."""
        operation = f"{method} {template(rule)}"
        with self._lock:
            self._total[operation] += 1
            if environment in self._by_env:
                self._by_env[environment][operation] += 1

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "by_operation", "by_environment": {env: {operation: n}}}``."""
        with self._lock:
            return {
                "total": sum(self._total.values()),
                "by_operation": dict(sorted(self._total.items())),
                "by_environment": {
                    env: dict(sorted(counts.items())) for env, counts in self._by_env.items()
                },
            }

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._total.clear()
            for counts in self._by_env.values():
                counts.clear()
