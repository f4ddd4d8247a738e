"""Stable task and queue names (``docs/architecture.md#tasks-and-queues``): renaming or moving
a module never strands a message already queued.

A route of the routes file (``docs/routes.md``) has a queue of its own for every request type
of its orders, :func:`route_queue`; the tasks keep their names. Without a routes file, and for
a message queued before routes, the per-type queues are where provisioning tasks wait.
"""

from __future__ import annotations

from pax8.models import RequestType

PREFIX = "fulfillment"
REPORT = f"{PREFIX}.report"
RECONCILE = f"{PREFIX}.reconcile"
USAGE_TICK = f"{PREFIX}.usage_tick"
USAGE_POST = f"{PREFIX}.usage_post"
DOCTOR = f"{PREFIX}.doctor"
"""The scheduled ``fulfill doctor`` (on the reconcile queue: maintenance, not orders)."""


PROVISION_TASKS: dict[RequestType, str] = {kind: f"{PREFIX}.{kind.snake}" for kind in RequestType}
"""Each request type's task name (also the name of its queue): built once, as every webhook
and every task names one."""


def task_name(request_type: RequestType) -> str:
    """``NetNew`` → ``fulfillment.net_new`` (also the name of its queue)."""
    return PROVISION_TASKS[request_type]


ALL_QUEUES: tuple[str, ...] = (
    *PROVISION_TASKS.values(),
    REPORT,
    RECONCILE,
    USAGE_TICK,
    USAGE_POST,
)


ROUTE_QUEUE_PREFIX = f"{PREFIX}.route."


def route_queue(route: str) -> str:
    """``archive`` → ``fulfillment.route.archive``: the queue of every provisioning task of a
    route of the routes file (a worker may serve it alone: ``WORKER_ROUTES``)."""
    return f"{ROUTE_QUEUE_PREFIX}{route}"


def queues_with(routes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Every queue of a deployment whose routes file names ``routes`` (the routes with a
    queue of their own): :data:`ALL_QUEUES`, then one per route."""
    return (*ALL_QUEUES, *(route_queue(route) for route in routes))
