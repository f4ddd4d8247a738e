"""Parse a CloudBlue call, record it as the ledger record it is, and enqueue it.

Which record a call is depends on what the ledger saw of its subscription (a call without a
``requestId`` that repeats the latest one is its retry; see :mod:`fulfillment.cloudblue.calls`),
so naming it costs one Redis round trip before the usual atomic record-and-enqueue of
:func:`fulfillment.intake.accept.accept`. Every call advances its subscription's sequence, with or
without a ``requestId``, so a stop sent with one and a start without one still tell a
later identical stop apart from a retry.
"""

from __future__ import annotations

import logging

from config.routes import Routes
from fulfillment.cloudblue.calls import (
    CloudBlueCall,
    CloudBlueError,
    detail_id,
    mpns_of,
    parse_call,
    record_id,
)
from fulfillment.intake.accept import Intake, accept
from fulfillment.intake.notifications import InvalidNotification, load_json
from fulfillment.intake.publisher import Publisher
from fulfillment.ledger import Ledger, Notice
from vendors.cloudblue import Operation

log = logging.getLogger(__name__)


def parse_cloudblue(body: bytes, suffix: Operation | None = None) -> CloudBlueCall:
    """Parse a CloudBlue ``ProvisioningRequestPayload`` (``suffix``: the operation its URL
    names). Which ledger record it is needs Redis (:func:`identify`)."""
    data = load_json(body)
    try:
        return parse_call(data, suffix)
    except CloudBlueError as exc:
        raise InvalidNotification(exc.field, exc.message) from None


def identify(ledger: Ledger, call: CloudBlueCall, keep_seconds: float = 0) -> Notice:
    """The notice of ``call``, named after its record (``keep_seconds``: how long the
    subscription's sequence is kept after its latest call, 0 for ever)."""
    order = call.order
    fingerprint = call.fingerprint
    occurrence = ledger.cloudblue_occurrence(order.subscription_id, fingerprint, keep_seconds)
    request_id = record_id(order, fingerprint, occurrence)
    return Notice(
        request_id=request_id,
        detail_id=detail_id(request_id),
        attempt_id="",
        type=call.request_type.value,
        simulation=False,
        payload=call.payload,
        source="cloudblue",
        products=mpns_of(order),
    )


def accept_call(
    ledger: Ledger,
    publisher: Publisher,
    call: CloudBlueCall,
    routes: Routes,
    keep_seconds: float = 0,
) -> tuple[Notice, Intake]:
    """Name, record and enqueue ``call`` (routed by its products' MPNs); raises if Redis or
    the broker fails."""
    notice = identify(ledger, call, keep_seconds)
    intake = accept(ledger, publisher, notice, routes)
    order = call.order
    # Every id here was checked against the id pattern when the call was parsed.
    log.info(
        "request_id=%s cloudblue operation=%s subscription_id=%s cloudblue_request_id=%s action=%s",
        notice.request_id,
        order.operation,
        order.subscription_id,
        order.request_id or "-",
        intake.action,
    )
    return notice, intake
