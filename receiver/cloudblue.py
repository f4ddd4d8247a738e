"""``POST /webhooks/cloudblue[/<suffix>]``: a CloudBlue request-URL call, answered with its
outcome.

PLM calls the product line's base URL plus a suffix per operation and reads the answer:
so the receiver authenticates, parses, records and enqueues as for Pax8, then waits (on
Redis, see :mod:`fulfillment.cloudblue.awaiting`) up to
``CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS`` for the worker's outcome. Answers
(``docs/architecture.md#http-answers-of-the-receiver``):

* ``200`` with a ``ProvisioningResponsePayload`` when the vendor succeeded;
* ``422`` with ``{"error"}`` (the vendor's message) when it refused;
* ``503`` with ``Retry-After`` when the outcome is not known by the deadline (or Redis is
  unreachable, or the order was given up on and waits for an operator); the platform's
  retry of the same call is the same ledger record, answered from it, never provisioned
  again;
* ``401``, ``400`` naming the field (``operation`` naming both when the suffix and the body
  disagree), ``413`` as for Pax8; ``404`` while ``CLOUDBLUE_WEBHOOK_SECRETS`` is unset.

Every answer after the call was recorded carries ``X-Fulfillment-Request-Id``, the ledger id
(``fulfill status ID``). Waiting costs a greenlet and a Redis connection, never a worker.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from fulfillment.cloudblue.awaiting import await_outcome, settled
from fulfillment.cloudblue.calls import KNOWN, operation_named, printable
from fulfillment.cloudblue.intake import accept_call, parse_cloudblue
from fulfillment.cloudblue.response import response_payload
from fulfillment.intake.notifications import InvalidNotification
from fulfillment.ledger import Record
from fulfillment.ledger.states import State
from fulfillment.runtime.clients import REDIS_UNAVAILABLE
from pax8.models import ResultStatus
from receiver.auth import Match, cloudblue_credentials
from receiver.errors import ApiError
from receiver.webhooks import RETRY_AFTER_SECONDS, count_answer, read_body, receiver, start_clock

bp = Blueprint("cloudblue", __name__)
# Counted and timed like a Pax8 webhook (fulfillment_webhooks_total, by route and status).
bp.before_request(start_clock)
bp.after_request(count_answer)
log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Fulfillment-Request-Id"
DEAD_RETRY_AFTER_SECONDS = "300"
"""A given-up order changes only when an operator replays it: no point asking sooner."""


@bp.post("/webhooks/cloudblue/", strict_slashes=False)
def cloudblue_webhook() -> ResponseReturnValue:
    """A call to the base URL itself: the body's ``operation`` says what to do."""
    return _call(None)


@bp.post("/webhooks/cloudblue/<suffix>", strict_slashes=False)
@bp.post("/webhooks/cloudblue//<suffix>", strict_slashes=False, merge_slashes=False)
def cloudblue_operation(suffix: str) -> ResponseReturnValue:
    """A call to the base URL plus an operation's suffix (``…/cloudblue/stop``); a base URL
    ending in ``/`` gives ``//stop``, which is taken as is rather than redirected."""
    return _call(suffix)


def _authenticate() -> None:
    ctx = receiver()
    if not ctx.cloudblue_secrets.configured:
        raise ApiError(404, "CloudBlue intake is off (set CLOUDBLUE_WEBHOOK_SECRETS)")
    header = ctx.settings.cloudblue_webhook_header
    presented = cloudblue_credentials(
        request.headers.get(header), request.headers.get("Authorization")
    )
    if ctx.cloudblue_secrets.check_any(presented) is Match.NONE:
        raise ApiError(401, f"missing or wrong credential ({header}, Bearer, or Basic in the URL)")


def _call(suffix: str | None) -> ResponseReturnValue:
    _authenticate()
    ctx = receiver()
    operation = operation_named(suffix) if suffix is not None else None
    try:
        call = parse_cloudblue(read_body(), operation)
    except InvalidNotification as exc:
        if suffix is not None and operation is None and exc.field == "operation":
            raise ApiError(
                400,
                "neither the URL suffix nor the body's operation names a known "
                f"operation ({KNOWN})",
                field="operation",
            ) from None
        raise ApiError(400, exc.message, field=exc.field) from None
    if suffix is not None and operation is None:
        log.warning(
            "cloudblue: new URL suffix %s taken as %s (from the body's operation)",
            printable(suffix),
            call.operation,
        )
    elif call.new_name is not None:
        log.warning(
            "cloudblue: new operation value %s taken as %s (from the URL suffix)",
            printable(call.new_name),
            call.operation,
        )
    services, settings = ctx.services, ctx.settings
    step = min(1.0, settings.redis_socket_timeout_seconds / 2)
    keep = settings.ledger_retention_days * 86400
    try:
        notice, _ = accept_call(services.ledger, services.publisher, call, settings.routes, keep)
    except REDIS_UNAVAILABLE as exc:
        log.warning("cloudblue call not accepted, Redis unavailable: %s", exc)
        raise _unavailable("the queue is unavailable; retry later") from None
    headers = {REQUEST_ID_HEADER: notice.request_id}
    try:
        record = await_outcome(
            services.ledger, notice.ref, settings.cloudblue_response_timeout_seconds, step
        )
    except REDIS_UNAVAILABLE as exc:
        log.warning("request_id=%s: Redis unavailable while waiting: %s", notice.request_id, exc)
        raise _unavailable("recorded, but its outcome cannot be read now; retry", headers) from None
    return _answer(record, headers)


def _unavailable(
    message: str, headers: dict[str, str] | None = None, retry_after: str = RETRY_AFTER_SECONDS
) -> ApiError:
    return ApiError(503, message, headers={**(headers or {}), "Retry-After": retry_after})


def _answer(record: Record | None, headers: dict[str, str]) -> ResponseReturnValue:
    if record is None or not settled(record):
        raise _unavailable(
            "recorded and being provisioned, not finished yet; retry the same call "
            "(it is answered from the ledger, never provisioned twice)",
            headers,
        )
    if record.state is State.DEAD:
        # The reason stays in the ledger and Sentry: it is the vendor's or ours, not the
        # platform's to read (it may name internals).
        raise _unavailable(
            "the vendor could not complete this operation and an operator was alerted; retry later",
            headers,
            DEAD_RETRY_AFTER_SECONDS,
        )
    if record.outcome is ResultStatus.FAIL:
        message = record.result_message or "The vendor refused this operation."
        raise ApiError(422, message, headers=headers)
    return jsonify(response_payload(record)), 200, headers
