"""``POST /webhooks/pax8``: authenticate, parse, record, enqueue (CloudBlue: ``cloudblue.py``).

Answers (``docs/architecture.md#http-answers-of-the-receiver``): 202 once recorded and
enqueued (also for a redelivery, which provisions nothing twice); 401 for a missing or wrong
credential, or a simulation credential on a production payload, with nothing recorded; 400
naming the field for a body that is not JSON or lacks the ids (never echoing a value); 413
over 256 KiB; 408 for a body that does not arrive within ``WEB_BODY_TIMEOUT_SECONDS``; 503
with Retry-After when Redis does not answer in time, so Pax8 retries (a frozen Redis may
still run the script it was sent when it resumes: the retry then finds the order in flight,
never provisioned twice). Every answer carries ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gevent
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import Counter, Histogram

from config.routes import Routes
from config.settings import Settings
from fulfillment.intake.accept import Intake, accept
from fulfillment.intake.notifications import InvalidNotification, parse_pax8
from fulfillment.ledger import Notice
from fulfillment.runtime import metrics
from fulfillment.runtime.clients import REDIS_UNAVAILABLE
from fulfillment.services import Services
from receiver.auth import Match, SecretChecker
from receiver.errors import ApiError

bp = Blueprint("webhooks", __name__)

# Redis cannot take this now (fulfillment.runtime.clients.REDIS_UNAVAILABLE): 503, Pax8 retries.
# Anything else from Redis (a script error, a wrong type) is a bug: a 500 Sentry reports.
RETRY_AFTER_SECONDS = "5"


@dataclass
class Receiver:
    """The receiver's collaborators, built once per process by the app factory."""

    settings: Settings
    services: Services
    pax8_secrets: SecretChecker
    cloudblue_secrets: SecretChecker
    routes: Routes
    """``services.settings.routes``, read once: the property goes through pydantic's
    private-attribute lookup (about 9 µs a read, on every webhook otherwise)."""


@bp.before_request
def start_clock() -> None:
    """Note when a webhook arrived (registered on the CloudBlue routes too)."""
    g.webhook_started = time.perf_counter()


@bp.after_request
def count_answer(response: Response) -> Response:
    """Count every webhook answer by route and status, and time it (in-process: no Redis).
    The CloudBlue routes register it too, so the 5xx alert sees every webhook route."""
    started = g.pop("webhook_started", None)
    route = request.url_rule.rule if request.url_rule is not None else "unknown"
    _answers(route, response.status_code).inc()
    if started is not None:
        _durations(route).observe(time.perf_counter() - started)
    return response


# The labelled series, looked up once each: prometheus_client's ``labels()`` checks, converts
# and locks on every call. Bounded: the label values are the app's route rules and HTTP
# statuses, never anything a request chooses.
_ANSWERS: dict[tuple[str, int], Counter] = {}
_DURATIONS: dict[str, Histogram] = {}


def _answers(route: str, status: int) -> Counter:
    """The ``fulfillment_webhooks_total`` series of ``route`` and ``status``."""
    series = _ANSWERS.get((route, status))
    if series is None:
        series = _ANSWERS[route, status] = metrics.WEBHOOKS.labels(route, str(status))
    return series


def _durations(route: str) -> Histogram:
    """The ``fulfillment_webhook_duration_seconds`` series of ``route``."""
    series = _DURATIONS.get(route)
    if series is None:
        series = _DURATIONS[route] = metrics.WEBHOOK_DURATION.labels(route)
    return series


def receiver() -> Receiver:
    """The current app's collaborators."""
    found: Receiver = current_app.extensions["fulfillment"]
    return found


def read_body() -> bytes:
    """The request body, at most MAX_CONTENT_LENGTH bytes (else 413), within
    ``WEB_BODY_TIMEOUT_SECONDS`` (else 408): a client holding a valid credential that declares
    a body and never sends it gets its connection back no later than that."""
    seconds = receiver().settings.web_body_timeout_seconds
    # gevent's timer: the receiver's reads are gevent's (the Procfile's gevent workers), and
    # a read that waits yields to it. Where nothing yields (a test client), nothing waits.
    try:
        with gevent.Timeout(seconds, _BodyLate):
            return _read_body()
    except _BodyLate:
        raise ApiError(
            408,
            f"the request body did not arrive within {seconds:g}s",
            headers={"Connection": "close"},
        ) from None


class _BodyLate(Exception):
    """The body did not arrive within ``WEB_BODY_TIMEOUT_SECONDS``."""


def _read_body() -> bytes:
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    if request.content_length is not None:
        # A declared oversize is refused by werkzeug before anything is read.
        return request.get_data(cache=False)
    # Chunked: werkzeug's limited stream would silently truncate at the limit, so read
    # the server's (de-chunked) stream ourselves and refuse one byte too many.
    stream = request.environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = stream.read(min(65536, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > limit:
        raise ApiError(413, "body too large (the limit is 256 KiB)")
    return b"".join(parts)


def _accept(notice: Notice) -> ResponseReturnValue:
    ctx = receiver()
    services = ctx.services
    try:
        intake: Intake = accept(services.ledger, services.publisher, notice, ctx.routes)
    except REDIS_UNAVAILABLE as exc:
        current_app.logger.warning(
            "request_id=%s not accepted, Redis unavailable: %s", notice.request_id, exc
        )
        raise ApiError(
            503,
            "the queue is unavailable; retry later",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        ) from None
    body: dict[str, Any] = {
        "status": "accepted",
        "provisionRequestId": notice.request_id,
        "action": intake.action,
    }
    if notice.attempt_id:
        body["provisionAttemptId"] = notice.attempt_id
    return jsonify(body), 202


@bp.post("/webhooks/pax8")
def pax8_webhook() -> ResponseReturnValue:
    """A Pax8 Provision Notification."""
    ctx = receiver()
    match = ctx.pax8_secrets.check(request.headers.get(ctx.settings.pax8_webhook_header))
    if match is Match.NONE:
        raise ApiError(401, f"missing or wrong {ctx.settings.pax8_webhook_header} credential")
    try:
        notice, _ = parse_pax8(read_body())
    except InvalidNotification as exc:
        raise ApiError(400, exc.message, field=exc.field) from None
    if match is Match.SIMULATION and not notice.simulation:
        # A simulation credential must never start real provisioning.
        raise ApiError(401, "a simulation credential is only valid for isSimulation: true")
    return _accept(notice)
