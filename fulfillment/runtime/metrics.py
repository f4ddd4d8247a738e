"""Every metric the processes record, defined once (Prometheus names, labels and units).

Recorded in-process where the event happens, never with a Redis call: the receiver counts
webhooks and times their answer, the worker counts vendor calls, results, retries and dead
orders. What only the ledger knows (orders by state, the oldest unreported outcome, queue
depth, reconciliation) is read at scrape time by :mod:`fulfillment.views.ledger_metrics`, so it is
the same whichever process serves it.

Conventions: counters end in ``_total``, durations are ``_seconds`` histograms, labels have
a small fixed set of values (a route, a status code, a request type, an outcome, a backend:
the name of a route of the routes file) and never an order's id. Every metric here has
labels: prometheus_client creates a labelled metric's storage at its first ``labels()``
call, which comes after a process has chosen single- or multi-process storage
(:mod:`fulfillment.runtime.multiprocess`), whatever it imported before.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
VENDOR_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RECONCILE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Buckets of ``fulfillment_reconcile_duration_seconds`` (kept in the ledger)."""

WEBHOOKS = Counter(
    "fulfillment_webhooks_total",
    "Webhook requests the receiver answered, by route and HTTP status.",
    ["route", "status"],
)
WEBHOOK_DURATION = Histogram(
    "fulfillment_webhook_duration_seconds",
    "Time from a webhook's arrival to its answer (auth, parse, record, enqueue).",
    ["route"],
    buckets=WEBHOOK_BUCKETS,
)
VENDOR_CALLS = Counter(
    "fulfillment_vendor_calls_total",
    "Calls to the vendor adapter, by request type, outcome "
    "(success, refused, transient, misconfigured, error) and backend (the route).",
    ["type", "outcome", "backend"],
)
VENDOR_MISCONFIGURED = Counter(
    "fulfillment_vendor_misconfigured_total",
    "Vendor answers that say the deployment is wrong and hold the order, by problem "
    "(redirect, credential, url, protocol, too-large: vendors/answers.py; route: the "
    "order's route is gone from the routes file) and backend (the route).",
    ["problem", "backend"],
)
VENDOR_DURATION = Histogram(
    "fulfillment_vendor_call_duration_seconds",
    "Duration of one vendor adapter call, by request type and backend (the route).",
    ["type", "backend"],
    buckets=VENDOR_BUCKETS,
)
VENDOR_SLOT_WAITS = Counter(
    "fulfillment_vendor_slot_waits_total",
    "Orders handed back to their queue because their backend had VENDOR_MAX_IN_FLIGHT calls "
    "in flight (each time an order asked and waited), by backend (the route).",
    ["backend"],
)
UNROUTED_ORDERS = Counter(
    "fulfillment_orders_unrouted_total",
    "Orders no route of the routes file takes (a product no route lists and no default "
    "route, or a CloudBlue call whose products belong to different backends), each "
    "answered with one Fail, by source (pax8, cloudblue).",
    ["source"],
)
RESULTS_POSTED = Counter(
    "fulfillment_results_posted_total",
    "ProvisionResults Pax8 accepted, by result status (Success, Fail).",
    ["status"],
)
RETRIES = Counter(
    "fulfillment_retries_total",
    "Retries scheduled, by kind of work (provision: a vendor call; report: a result post).",
    ["kind"],
)
DEAD_ORDERS = Counter(
    "fulfillment_orders_dead_total",
    "Orders given up on, by reason (retries-exhausted, adapter-error, worker-lost, "
    "report-refused).",
    ["reason"],
)

BACKEND_LABEL_MAX = 32
"""A backend label is a route's name, from the routes file (at most 32 characters): never a
value from a request."""


def backend(route: str) -> str:
    """The ``backend`` label value of ``route`` (``-``: none takes the order)."""
    return route[:BACKEND_LABEL_MAX] or "-"


# Label values, spelled once.
SUCCESS, REFUSED, TRANSIENT, ERROR = "success", "refused", "transient", "error"
MISCONFIGURED = "misconfigured"
PROVISION, REPORT = "provision", "report"
