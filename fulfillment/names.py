"""Stable task and queue names (``docs/architecture.md#tasks-and-queues``): renaming or moving
a module never strands a message already queued."""

from __future__ import annotations

from pax8.models import RequestType

PREFIX = "fulfillment"
REPORT = f"{PREFIX}.report"
RECONCILE = f"{PREFIX}.reconcile"
USAGE_TICK = f"{PREFIX}.usage_tick"
USAGE_POST = f"{PREFIX}.usage_post"
DOCTOR = f"{PREFIX}.doctor"
"""The scheduled ``fulfill doctor`` (on the reconcile queue: maintenance, not orders)."""


def task_name(request_type: RequestType) -> str:
    """``NetNew`` → ``fulfillment.net_new`` (also the name of its queue)."""
    return f"{PREFIX}.{request_type.snake}"


PROVISION_TASKS: dict[RequestType, str] = {kind: task_name(kind) for kind in RequestType}
ALL_QUEUES: tuple[str, ...] = (
    *PROVISION_TASKS.values(),
    REPORT,
    RECONCILE,
    USAGE_TICK,
    USAGE_POST,
)
