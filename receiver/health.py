"""``/healthz`` (the process runs), ``/readyz`` (Redis answers) and ``/metrics`` (with the
metrics token only)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from fulfillment.clients import REDIS_UNAVAILABLE
from fulfillment.ledger import STATES
from receiver.errors import ApiError
from receiver.webhooks import receiver

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: 200 while the process serves requests."""
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: 200 only when Redis answers a PING."""
    try:
        receiver().services.redis.ping()
    except REDIS_UNAVAILABLE:
        # Up or down, no error text: it would tell an outsider where Redis lives.
        return jsonify({"status": "unavailable"}), 503
    return jsonify({"status": "ok"}), 200


def _scrape_allowed() -> bool:
    """Whether this request carries ``Authorization: Bearer $METRICS_TOKEN`` (constant time)."""
    token = receiver().settings.metrics_token
    if token is None:
        return False
    presented = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(presented.encode(), expected.encode())


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Ledger counts by state and reconciliation runs, in Prometheus text format.

    Only for a scrape with ``Authorization: Bearer $METRICS_TOKEN``: without the token
    configured, or with a wrong one, the route does not exist (404) on the webhook port.
    """
    if not _scrape_allowed():
        raise ApiError(404, "not found")
    ledger = receiver().services.ledger
    try:
        counts = ledger.counts()
        runs, last = ledger.reconcile_runs()
    except REDIS_UNAVAILABLE:
        return jsonify({"status": "unavailable"}), 503
    lines = [
        "# HELP fulfillment_orders Provision requests in the ledger, by state.",
        "# TYPE fulfillment_orders gauge",
        *(f'fulfillment_orders{{state="{state}"}} {counts.get(state, 0)}' for state in STATES),
        "# HELP fulfillment_reconcile_runs_total Reconciliation runs that did work.",
        "# TYPE fulfillment_reconcile_runs_total counter",
        f"fulfillment_reconcile_runs_total {runs}",
    ]
    if last is not None:
        lines += [
            "# HELP fulfillment_reconcile_last_run_timestamp_seconds When the last run ended.",
            "# TYPE fulfillment_reconcile_last_run_timestamp_seconds gauge",
            f"fulfillment_reconcile_last_run_timestamp_seconds {last['at']:.3f}",
            "# HELP fulfillment_reconcile_last_enqueued Orders the last run enqueued.",
            "# TYPE fulfillment_reconcile_last_enqueued gauge",
            f"fulfillment_reconcile_last_enqueued {last.get('enqueued', 0)}",
        ]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
