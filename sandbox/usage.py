"""Pax8's Vendor Usage API, played in memory: ``/v2/usage/lines`` and its control plane.

What it does, and where Pax8 says so (its pages ``usage-lines``, ``overwrite-same-day-usage``,
``api-limitations``, ``usage-overview``, ``authentication`` and the OpenAPI document
``vendor-usage-endpoints.json``):

* ``POST /v2/usage/lines?subscriptionId=…`` or ``?externalSubscriptionId=…`` (exactly one),
  ``&billingPeriod=yyyy-MM``, a JSON array of usage lines; ``overwriteSameDayUsage`` (default
  true) replaces the lines posted earlier the same day for each summaryKey of the post,
  ``false`` adds to them. A summary's billed lines are those of the latest day it was posted
  on (``billing-usage-examples``).
* ``GET /v2/usage/lines?…&billingPeriod=…&summaryKey=…``: those billed lines, as a page.
* Tokens of the audience ``api://usage`` only (a provisioning token is a 401).
* 400 (Pax8's ``{"message", "status", "details.field"}``) for more than 50 lines, a
  ``summaryKey`` or ``summaryDisplayName`` over 255 characters, a malformed period or line;
  404 for a subscription unknown to the token's environment.
* 429 with ``Retry-After`` past ``usage_rate_limit`` posts in ``usage_rate_window`` seconds
  (Pax8: at most 1,000 posts a minute), per environment.
* The cutoff: nothing for a period is accepted from 00:00 UTC on the 3rd of the next month
  (Pax8: "after midnight UTC on the 2nd"; read as the midnight that ends the 2nd, as the
  charges come three days after the period ends), nor for a period that has not begun.

"Today" is the sandbox's usage clock: the system clock, or the time written in
``--clock-file`` (ISO 8601), which tests share with the worker to compress a month. Fault
rules (:mod:`sandbox.faults`) apply to these routes as to every ``/v2`` route.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from sandbox.auth import USAGE_AUDIENCE
from sandbox.context import current
from sandbox.errors import ApiError, invalid, not_found, read_json
from sandbox.paging import page, page_request
from sandbox.usage_book import UsageBook, period_cutoff, period_start

MAX_LINES = 50
SUMMARY_MAX = 255
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_LINE_TEXT = ("summaryKey", "summaryDisplayName")
_LINE_IDS = ("productId", "unitOfMeasurement")

usage_api = Blueprint("pax8_usage", __name__, url_prefix="/v2/usage")
usage_control = Blueprint("sandbox_usage", __name__, url_prefix="/sandbox/usage")


def book() -> UsageBook:
    """The usage book of the current app's sandbox."""
    return current().usage


# -- the Usage API ---------------------------------------------------------------------------


@usage_api.before_request
def _authenticate() -> None:
    g.environment = current().tokens.require(request.headers.get("Authorization"), USAGE_AUDIENCE)


def _subscription(env: str) -> str:
    args = request.args
    given = [name for name in ("subscriptionId", "externalSubscriptionId") if args.get(name)]
    if len(given) != 1:
        raise invalid("subscriptionId", "a subscriptionId OR an externalSubscriptionId is required")
    name = given[0]
    value = args[name]
    store = current().store
    found = (
        store.subscription_of(env, subscription_id=value)
        if name == "subscriptionId"
        else store.subscription_of(env, external_id=value)
    )
    if found is None:
        raise not_found("subscription", value)
    return found


def _period(now: datetime) -> str:
    period = request.args.get("billingPeriod") or ""
    if not _PERIOD.match(period):
        raise invalid("billingPeriod", "Billing period with format yyyy-MM is required")
    return period


def _lines(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise invalid("body", "must be a JSON array of usage lines")
    if not body:
        raise invalid("body", "at least one usage line is required")
    if len(body) > MAX_LINES:
        raise invalid(
            "body",
            f"at most {MAX_LINES} usage lines per request ({len(body)} sent): the request is "
            "synchronous; send the rest with overwriteSameDayUsage=false",
        )
    out = []
    for index, line in enumerate(body):
        where = f"[{index}]"
        if not isinstance(line, dict):
            raise invalid(where, "must be a usage line object")
        for name in _LINE_TEXT:
            value = line.get(name)
            if not isinstance(value, str) or not value:
                raise invalid(f"{where}.{name}", "is required")
            if len(value) > SUMMARY_MAX:
                raise invalid(
                    f"{where}.{name}",
                    "`summaryKey` and `summaryDisplayName` must be 255 characters or less.",
                )
        for name in _LINE_IDS:
            if not isinstance(line.get(name), str) or not line[name]:
                raise invalid(f"{where}.{name}", "is required")
        quantity = line.get("quantity")
        if not isinstance(quantity, int | float) or isinstance(quantity, bool):
            raise invalid(f"{where}.quantity", "must be a number")
        out.append({key: line[key] for key in (*_LINE_TEXT, "quantity", *_LINE_IDS)})
    return out


def _open(period: str, now: datetime) -> None:
    if now < period_start(period):
        raise invalid("billingPeriod", f"billing period {period} has not begun")
    cutoff = period_cutoff(period)
    if now >= cutoff:
        raise invalid(
            "billingPeriod",
            f"usage for billing period {period} can no longer be submitted (the period "
            f"closed at {cutoff.isoformat().replace('+00:00', 'Z')})",
        )


def _overwrite() -> bool:
    raw = request.args.get("overwriteSameDayUsage")
    if raw is None or raw.lower() == "true":
        return True
    if raw.lower() == "false":
        return False
    raise invalid("overwriteSameDayUsage", "must be true or false")


@usage_api.post("/lines")
def save_lines() -> Response:
    """saveUsageLines: the period's current totals for each summaryKey posted."""
    env = g.environment
    usage = book()
    wait = usage.admit(env)
    if wait is not None:
        raise ApiError(
            429,
            f"rate limit exceeded: at most {usage.rate_limit} usage posts per "
            f"{usage.rate_window:g} seconds",
            headers={"Retry-After": str(max(1, int(-(-wait // 1))))},
        )
    now = usage.clock()
    try:
        subscription = _subscription(env)
        period = _period(now)
        overwrite = _overwrite()
        lines = _lines(read_json(required=True))
        _open(period, now)
    except ApiError as exc:
        usage.refused(str(exc.status))
        raise
    day = usage.post(env, subscription, period, lines, overwrite)
    return jsonify([{**line, "usageDate": day.isoformat()} for line in lines])


@usage_api.get("/lines")
def get_lines() -> Response:
    """getUsageLines: the billed lines of one summary of a period, as a page."""
    env = g.environment
    subscription = _subscription(env)
    period = _period(book().clock())
    key = request.args.get("summaryKey")
    if not key:
        raise invalid("summaryKey", "is required")
    found = book().billed(env, subscription, period).get(key)
    lines = [{**line, "usageDate": found["usageDate"]} for line in found["lines"]] if found else []
    return jsonify(page(lines, page_request(request.args)))


# -- control plane ---------------------------------------------------------------------------


@usage_control.get("")
def billed() -> Response:
    """What Pax8 would bill, per subscription and period: ``?environment=&billingPeriod=``
    (and ``subscriptionId`` for one), plus the counters (posts, lines, rate_limited...)."""
    env = request.args.get("environment", "production")
    if env not in ("production", "simulation"):
        raise invalid("environment", "must be production or simulation")
    period = request.args.get("billingPeriod") or None
    usage = book()
    everything = usage.everything(env, period)
    subscription = request.args.get("subscriptionId")
    if subscription is not None:
        everything = {subscription: everything.get(subscription, {})}
    return jsonify({"environment": env, "subscriptions": everything, "stats": dict(usage.stats)})


@usage_control.post("/reset")
def reset() -> Response:
    """Forget every usage line and counter."""
    book().clear()
    return jsonify({"status": "reset"})
