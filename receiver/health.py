"""``/healthz`` (the process runs) and ``/readyz`` (Redis answers).

``/readyz`` also says which release answers and the schema the ledger's data is at (a rolling
deploy shows which replicas run which release: ``docs/upgrading.md``); never an error text.
Metrics are not served on the webhook port at all (``/metrics`` here is a 404 for everyone):
gunicorn's master serves them on ``WEB_METRICS_PORT`` (``receiver/metrics.py``).
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from config.version import __version__
from fulfillment.runtime.clients import REDIS_UNAVAILABLE
from receiver.webhooks import receiver

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: 200 while the process serves requests."""
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: 200 only when Redis answers a PING; the release and the data's schema."""
    try:
        schema = receiver().services.ledger.ping_schema()
    except REDIS_UNAVAILABLE:
        # Up or down, no error text: it would tell an outsider where Redis lives.
        return jsonify({"status": "unavailable", "release": __version__}), 503
    return jsonify({"status": "ok", "release": __version__, "schema": schema}), 200
