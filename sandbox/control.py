"""The control plane: ``/sandbox/...`` routes that tests, the demo and benchmarks steer with.

No authentication (the sandbox listens on loopback), JSON in and out (a write whose
Content-Type is not ``application/json`` is a ``415``, and a foreign ``Host`` a ``400``:
``sandbox/app.py``), errors in the same shape as the Pax8 routes. Bodies are checked
strictly: an unknown field is a 400, so a typo in a test (``"wiat": true``) fails loudly
instead of being ignored.

Routes: health, config, openapi.json, reset, orders, bulk, webhooks, requests (dump, one,
new details, redeliver), attempts/<id>/deliver (duplicates), results, deliveries, calls,
tokens/expire, faults.
"""

import json
from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.auth import SCOPES
from sandbox.config import ENVIRONMENTS, is_header_name, is_http_url
from sandbox.context import Sandbox, current
from sandbox.delivery import Chain
from sandbox.errors import ApiError, invalid, read_json, read_object
from sandbox.faults import parse_rule
from sandbox.orders import for_products, parse_order
from sandbox.store import ATTEMPT_STATUSES, Created

control = Blueprint("sandbox_control", __name__, url_prefix="/sandbox")

MAX_ORDERS = 10_000
MAX_BULK = 100_000
MAX_DUPLICATES = 100


def _body(*allowed: str) -> dict[str, Any]:
    body = read_object(required=False)
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(unknown[0], f"unknown field (known: {', '.join(allowed) or 'none'})")
    return body


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise invalid(name, "must be true or false")
    return value


def _int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(name, f"must be an integer between {low} and {high}")
    return value


def _environment(value: Any, name: str = "environment") -> str:
    if value not in ENVIRONMENTS:
        raise invalid(name, f"must be one of {', '.join(ENVIRONMENTS)}")
    return str(value)


def _env_filter() -> str | None:
    value = request.args.get("environment") or None
    return None if value is None else _environment(value)


def _created(payload: Any, status: int = 201) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


# -- health, config, schema, reset -----------------------------------------------------------


@control.get("/health")
def health() -> Response:
    """Liveness: 200 while the process serves."""
    return jsonify({"status": "ok"})


@control.get("/config")
def config() -> Response:
    """Provisioner ids, client credentials, webhook configurations and delivery settings."""
    sandbox = current()
    summary = sandbox.store.summary()
    environments = {}
    for env in ENVIRONMENTS:
        client_id, client_secret = sandbox.config.credentials(env)
        environments[env] = {
            "provisionerId": summary[env]["provisioner"]["id"],
            "provisioner": summary[env]["provisioner"],
            "clientId": client_id,
            "clientSecret": client_secret,
            "scope": SCOPES[env],
            "webhooks": summary[env]["webhooks"],
        }
    return jsonify(
        {
            "environments": environments,
            "apiPath": "/v2",
            "tokenPath": "/v1/token",
            "audience": "api://provisioning",
            "tokenTtl": sandbox.config.token_ttl,
            "retryDelay": sandbox.config.retry_delay,
            "maxRetries": sandbox.config.max_retries,
            "deliveryTimeout": sandbox.config.delivery_timeout,
            "webhookHeader": sandbox.config.webhook_header,
        }
    )


@control.get("/openapi.json")
def openapi() -> Response:
    """The Pax8 OpenAPI document this sandbox implements."""
    text = resources.files("sandbox").joinpath("openapi/pax8-provisioning-openapi.json")
    return jsonify(json.loads(text.read_text(encoding="utf-8")))


@control.post("/reset")
def reset() -> Response:
    """Forget all data, deliveries, counters, faults and tokens (webhooks too if asked)."""
    body = _body("webhooks")
    sandbox = current()
    webhooks = _bool(body, "webhooks", False)
    sandbox.deliverer.reset()
    sandbox.store.reset(webhooks=webhooks)
    sandbox.calls.reset()
    sandbox.faults.clear()
    sandbox.tokens.expire_all()
    sandbox.usage.clear()
    return jsonify({"status": "reset", "webhooks": webhooks})


# -- making orders ---------------------------------------------------------------------------


def _deliver(sandbox: Sandbox, created: list[Created], wait: bool, retries: int) -> list[Chain]:
    chains = []
    for item in created:
        assert item.attempt_id is not None
        attempt = sandbox.store.attempts_by_id(item.environment, [item.attempt_id])[0]
        chains.append(
            sandbox.deliverer.start_chain(item.environment, item.request_id, attempt, retries)
        )
    if wait:
        for chain in chains:
            chain.wait()
    return chains


def _event(sandbox: Sandbox, item: Created, chain: Chain | None) -> dict[str, Any]:
    """The order-event shape; with a chain, its latest attempt and the list of all of them."""
    attempt_ids = chain.attempt_ids[:] if chain is not None else [item.attempt_id]
    attempts = sandbox.store.attempts_by_id(item.environment, [a for a in attempt_ids if a])
    event = sandbox.store.order_event(item.environment, item.request_id, None)
    if attempts:
        event["provisionDetail"] = next(
            d
            for d in sandbox.store.details(item.environment, item.request_id)
            if d["id"] == attempts[-1]["provisionDetailId"]
        )
        event["provisionAttempt"] = attempts[-1]
    event["attempts"] = attempts
    return event


@control.post("/orders")
def orders() -> Response:
    """Production-style (or simulation) orders, delivered in the background unless wait."""
    body = _body("environment", "count", "order", "deliver", "wait", "products")
    sandbox = current()
    env = _environment(body.get("environment", "production"))
    count = _int(body, "count", 1, 1, MAX_ORDERS)
    template = parse_order(body.get("order"), prefix="order.")
    deliver, wait = _bool(body, "deliver", True), _bool(body, "wait", False)
    if count > 1 and template.fixed_ids:
        raise invalid(f"order.{template.fixed_ids[0]}", "a fixed id allows only count 1")
    if "products" in body:
        # Several products in turn: each order is one template of its own.
        templates = for_products(template, body["products"], count)
        created = [c for t in templates for c in sandbox.store.create_orders(env, t, 1)]
    else:
        created = sandbox.store.create_orders(env, template, count)
    chains: list[Chain | None] = [None] * len(created)
    if deliver:
        chains = list(_deliver(sandbox, created, wait, sandbox.retries(env)))
    return _created(
        {"orders": [_event(sandbox, c, ch) for c, ch in zip(created, chains, strict=True)]}
    )


@control.post("/bulk")
def bulk() -> Response:
    """Many requests at once, never delivered: a backlog for reconciliation to find."""
    body = _body("environment", "count", "order", "attempt_status")
    sandbox = current()
    env = _environment(body.get("environment", "production"))
    count = _int(body, "count", 1, 1, MAX_BULK)
    template = parse_order(body.get("order"), prefix="order.")
    if count > 1 and template.fixed_ids:
        raise invalid(f"order.{template.fixed_ids[0]}", "a fixed id allows only count 1")
    status = body.get("attempt_status", "Failed")
    if status is not None and status not in ATTEMPT_STATUSES:
        raise invalid("attempt_status", f"must be one of {', '.join(ATTEMPT_STATUSES)} or null")
    created = sandbox.store.create_orders(
        env, template, count, status, "not delivered (bulk)", random_webhook_id=True
    )
    return _created(
        {
            "requests": [
                {"id": c.request_id, "detailId": c.detail_id, "attemptId": c.attempt_id}
                for c in created
            ]
        }
    )


@control.post("/webhooks")
def webhooks() -> Response:
    """A webhook configuration with a credential of the caller's choosing (or a random one)."""
    body = _body("environment", "url", "credential", "header")
    sandbox = current()
    env = _environment(body.get("environment", "production"))
    url = body.get("url")
    if not isinstance(url, str) or not is_http_url(url):
        raise invalid("url", "must be an absolute http(s) URL")
    header = body.get("header", sandbox.config.webhook_header)
    if not isinstance(header, str) or not is_header_name(header):
        raise invalid("header", "must be a valid HTTP header name")
    credential = body.get("credential")
    if credential is not None and (not isinstance(credential, str) or not credential):
        raise invalid("credential", "must be a non-empty string")
    return _created(sandbox.store.create_webhook(env, url, header, credential).created())


# -- requests: dump, new details, redelivery, duplicates -------------------------------------


@control.get("/requests")
def dump_requests() -> Response:
    """Every request with its details, attempts and results."""
    return jsonify({"requests": current().store.dump(_env_filter())})


@control.get("/requests/<request_id>")
def dump_request(request_id: str) -> Response:
    """One request with its details, attempts and results."""
    found = current().store.dump(request_id=request_id)
    if not found:
        raise ApiError(404, f"provision request {request_id} not found")
    return jsonify(found[0])


@control.post("/requests/<request_id>/details")
def new_detail(request_id: str) -> Response:
    """The partner fixed checkout data: a new detail and a new attempt, delivered."""
    body = _body("details", "deliver", "wait")
    sandbox = current()
    details = body.get("details", {})
    if not isinstance(details, dict):
        raise invalid("details", "must be an object")
    deliver, wait = _bool(body, "deliver", True), _bool(body, "wait", False)
    created = sandbox.store.add_detail(request_id, details)
    chain = None
    if deliver:
        chain = _deliver(sandbox, [created], wait, sandbox.retries(created.environment))[0]
    return _created(_event(sandbox, created, chain))


@control.post("/requests/<request_id>/redeliver")
def redeliver(request_id: str) -> Response:
    """A Pax8 retry: a new attempt (new id) for the latest detail, delivered once."""
    body = _body("wait", "retries")
    sandbox = current()
    wait = _bool(body, "wait", False)
    retries = _int(body, "retries", 0, 0, 100)
    env = sandbox.store.environment_of(request_id)
    attempt = sandbox.store.create_attempt(env, request_id, "Issued")
    created = Created(env, request_id, attempt["provisionDetailId"], attempt["id"])
    chain = _deliver(sandbox, [created], wait, retries)[0]
    return _created(_event(sandbox, created, chain))


@control.post("/attempts/<attempt_id>/deliver")
def duplicate(attempt_id: str) -> Response:
    """Send the same notification (same attempt id) ``times`` times at once."""
    body = _body("times", "wait")
    sandbox = current()
    times = _int(body, "times", 1, 1, MAX_DUPLICATES)
    if _bool(body, "wait", True):
        codes = sandbox.deliverer.duplicate(attempt_id, times)
        return jsonify({"attemptId": attempt_id, "statusCodes": codes})
    sandbox.store.delivery_target(attempt_id)  # 404 now rather than in the background
    sandbox.deliverer.duplicate_later(attempt_id, times)
    return _created({"attemptId": attempt_id, "scheduled": times}, 202)


# -- observing -------------------------------------------------------------------------------


@control.get("/results")
def results() -> Response:
    """Every result posted, filtered by environment, request_id, attempt_id."""
    found = current().store.all_results(
        _env_filter(),
        request.args.get("request_id") or None,
        request.args.get("attempt_id") or None,
    )
    return jsonify({"results": found})


@control.get("/deliveries")
def deliveries() -> Response:
    """Every webhook delivery, filtered by environment, request_id, attempt_id."""
    found = current().store.deliveries(
        _env_filter(),
        request.args.get("request_id") or None,
        request.args.get("attempt_id") or None,
    )
    return jsonify({"deliveries": found})


@control.get("/calls")
def calls() -> Response:
    """Pax8 API calls counted by operation (method and route template) and environment."""
    return jsonify(current().calls.snapshot())


@control.post("/calls/reset")
def reset_calls() -> Response:
    """Zero the call counters."""
    current().calls.reset()
    return jsonify(current().calls.snapshot())


@control.post("/tokens/expire")
def expire_tokens() -> Response:
    """Make every issued token invalid at once (the next API call is a 401)."""
    return jsonify({"expired": current().tokens.expire_all()})


# -- faults ----------------------------------------------------------------------------------


@control.get("/faults")
def list_faults() -> Response:
    """The rules, each with its remaining and fired counts."""
    return jsonify({"rules": current().faults.snapshot()})


@control.put("/faults")
def replace_faults() -> Response:
    """Replace every rule: body ``{"rules": [...]}``."""
    body = read_object(required=True)
    rules = body.get("rules")
    if not isinstance(rules, list):
        raise invalid("rules", "must be a list of rules")
    parsed = [parse_rule(rule, f"rules[{i}]") for i, rule in enumerate(rules)]
    return jsonify({"rules": current().faults.replace(parsed)})


@control.post("/faults")
def add_fault() -> Response:
    """Append one rule."""
    return _created(current().faults.append(parse_rule(read_json(required=True))))


@control.delete("/faults")
def clear_faults() -> Response:
    """Remove every rule."""
    current().faults.clear()
    return jsonify({"rules": []})
