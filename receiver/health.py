"""``/healthz`` (the process runs) and ``/readyz`` (Redis answers)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from receiver.webhooks import UNAVAILABLE, receiver

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: 200 while the process serves requests."""
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: 200 only when Redis answers a PING."""
    try:
        receiver().ledger.redis.ping()
    except UNAVAILABLE as exc:
        return jsonify({"status": "unavailable", "redis": str(exc)}), 503
    return jsonify({"status": "ok", "redis": "ok"}), 200
