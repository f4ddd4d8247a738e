"""``/healthz`` (the process runs) and ``/readyz`` (Redis answers).

Metrics are not served on the webhook port at all (``/metrics`` here is a 404 for everyone):
gunicorn's master serves them on ``WEB_METRICS_PORT`` (``receiver/metrics.py``).
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from fulfillment.runtime.clients import REDIS_UNAVAILABLE
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
