"""The Pax8 routes: ``POST /v1/token`` and the 21 operations of the Vendor Provisioning API.

Paths, shapes and status codes follow ``openapi/pax8-provisioning-openapi.json`` (the API
base is ``/v2``, as at api.pax8.com). Every ``/v2`` call needs a bearer token; the token's
environment decides which data the call sees. List operations answer Pax8's page envelope
(:mod:`sandbox.paging`). Werkzeug ranks static path segments above variables, so
``/latest`` and ``/unfulfilled`` are never taken for ids.
"""

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from sandbox.config import is_header_name, is_http_url
from sandbox.context import current
from sandbox.errors import ApiError, invalid, read_json, read_object
from sandbox.orders import parse_order
from sandbox.paging import page, page_request
from sandbox.results import parse_result

DEFAULT_WEBHOOK_HEADER = "pax8ApiTokenV1"

token_blueprint = Blueprint("pax8_token", __name__)
api = Blueprint("pax8_api", __name__, url_prefix="/v2")


def environment() -> str:
    """The environment of the current call's token (set by the auth hook)."""
    env = g.get("environment")
    assert isinstance(env, str)
    return env


def _paged(items: list[dict[str, Any]]) -> Response:
    return jsonify(page(items, page_request(request.args)))


# -- token -----------------------------------------------------------------------------------


@token_blueprint.post("/v1/token")
def issue_token() -> Response:
    """OAuth2 client credentials, from a JSON or form body (or HTTP Basic for the client)."""
    sandbox = current()
    form = _token_form()
    grant = form.get("grant_type")
    if grant not in (None, "", "client_credentials"):
        raise ApiError(
            400, "grant_type must be client_credentials", {"error": "unsupported_grant_type"}
        )
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    if request.authorization is not None and request.authorization.type == "basic":
        client_id = client_id or request.authorization.username
        client_secret = client_secret or request.authorization.password
    token = sandbox.tokens.authenticate(
        _text(client_id), _text(client_secret), _text(form.get("audience"))
    )
    g.environment = token.environment
    response = jsonify(token.answer(sandbox.config.token_ttl))
    response.headers["Cache-Control"] = "no-store"
    return response


def _token_form() -> dict[str, Any]:
    if request.mimetype == "application/x-www-form-urlencoded" or request.form:
        return dict(request.form)
    body = read_json(required=False)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "the token request must be a JSON object or a form")
    return body


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# -- auth for every /v2 call -----------------------------------------------------------------


@api.before_request
def _authenticate() -> None:
    g.environment = current().tokens.require(request.headers.get("Authorization"))


# -- provisioners and webhooks ---------------------------------------------------------------


@api.get("/provisioners")
def list_provisioners() -> Response:
    """getAllProvisioners: the caller's own provisioner."""
    return _paged(current().store.provisioners(environment()))


@api.get("/provisioners/<provisioner_id>")
def get_provisioner(provisioner_id: str) -> Response:
    """getOneProvisioner."""
    return jsonify(current().store.provisioner(environment(), provisioner_id))


@api.get("/provisioners/<provisioner_id>/webhooks")
def list_webhooks(provisioner_id: str) -> Response:
    """getAllWebhooksForProvisioner: credentials masked."""
    return _paged(current().store.webhooks(environment(), provisioner_id))


@api.get("/provisioners/<provisioner_id>/webhooks/latest")
def latest_webhook(provisioner_id: str) -> Response:
    """getLatestWebhookForProvisioner: the one notifications go to."""
    return jsonify(current().store.latest_webhook(environment(), provisioner_id))


@api.get("/provisioners/<provisioner_id>/webhooks/<webhook_id>")
def get_webhook(provisioner_id: str, webhook_id: str) -> Response:
    """getOneWebhookForProvisioner."""
    return jsonify(current().store.webhook(environment(), provisioner_id, webhook_id))


@api.post("/provisioners/<provisioner_id>/webhooks")
def create_webhook(provisioner_id: str) -> Response:
    """createWebhookForProvisioner: the generated credential is shown this once."""
    store = current().store
    env = environment()
    store.provisioner(env, provisioner_id)
    body = read_object(required=True)
    url = body.get("url")
    if not isinstance(url, str) or not is_http_url(url):
        raise invalid("url", "must be an absolute http(s) URL")
    secret = body.get("sharedSecret")
    header = DEFAULT_WEBHOOK_HEADER
    if secret is not None:
        if not isinstance(secret, dict):
            raise invalid("sharedSecret", "must be an object")
        given = secret.get("header")
        if given is not None:
            if not isinstance(given, str) or not is_header_name(given):
                raise invalid("sharedSecret.header", "must be a valid HTTP header name")
            header = given
    return jsonify(store.create_webhook(env, url, header).created())


# -- provision requests ----------------------------------------------------------------------


@api.get("/provision-requests")
def list_requests() -> Response:
    """getAllProvisionRequests, oldest first."""
    return _paged(current().store.requests(environment()))


@api.get("/provision-requests/unfulfilled")
def list_unfulfilled() -> Response:
    """getAllUnfulfilledProvisionRequests: no Success yet and the latest attempt unanswered."""
    return _paged(current().store.unfulfilled(environment()))


@api.get("/provision-requests/<request_id>")
def get_request(request_id: str) -> Response:
    """getOneProvisionRequest."""
    return jsonify(current().store.request(environment(), request_id))


@api.get("/provision-requests/<request_id>/details")
def list_details(request_id: str) -> Response:
    """getAllProvisionDetails."""
    return _paged(current().store.details(environment(), request_id))


@api.get("/provision-requests/<request_id>/details/latest")
def latest_detail(request_id: str) -> Response:
    """getLatestProvisionDetail."""
    return jsonify(current().store.latest_detail(environment(), request_id))


@api.get("/provision-requests/<request_id>/details/<detail_id>")
def get_detail(request_id: str, detail_id: str) -> Response:
    """getOneProvisionDetail."""
    return jsonify(current().store.detail(environment(), request_id, detail_id))


@api.get("/provision-requests/<request_id>/attempts")
def list_attempts(request_id: str) -> Response:
    """getAllProvisionAttempts, optionally of one ``provisionDetailId``."""
    detail_id = request.args.get("provisionDetailId") or None
    return _paged(current().store.attempts(environment(), request_id, detail_id))


@api.get("/provision-requests/<request_id>/attempts/latest")
def latest_attempt(request_id: str) -> Response:
    """getLatestProvisionAttempt."""
    return jsonify(current().store.latest_attempt(environment(), request_id))


@api.get("/provision-requests/<request_id>/attempts/<attempt_id>")
def get_attempt(request_id: str, attempt_id: str) -> Response:
    """getOneProvisionAttempt."""
    return jsonify(current().store.attempt(environment(), request_id, attempt_id))


@api.post("/provision-requests/<request_id>/attempts")
def create_attempt(request_id: str) -> Response:
    """createAttemptForRequest: a new, already Acknowledged attempt; no webhook is sent."""
    return jsonify(current().store.create_attempt(environment(), request_id, "Acknowledged"))


@api.get("/provision-requests/<request_id>/results")
def list_results(request_id: str) -> Response:
    """getAllProvisionResults, optionally of one ``provisionAttemptId``."""
    attempt_id = request.args.get("provisionAttemptId") or None
    return _paged(current().store.results(environment(), request_id, attempt_id))


@api.get("/provision-requests/<request_id>/results/latest")
def latest_result(request_id: str) -> Response:
    """getLatestProvisionResult."""
    return jsonify(current().store.latest_result(environment(), request_id))


@api.get("/provision-requests/<request_id>/results/<result_id>")
def get_result(request_id: str, result_id: str) -> Response:
    """getOneProvisionResult."""
    return jsonify(current().store.result(environment(), request_id, result_id))


@api.post("/provision-requests/<request_id>/results")
def create_result(request_id: str) -> Response:
    """createProvisionResult: one per Acknowledged attempt (a second one is a 409)."""
    store = current().store
    env = environment()
    store.request(env, request_id)  # an unknown request is a 404 before any 400
    return jsonify(store.record_result(env, request_id, parse_result(read_json(required=True))))


# -- simulation ------------------------------------------------------------------------------


@api.post("/provision-simulations/order-events")
def create_order_event() -> Response:
    """createOrderEvent: make a simulated order and deliver its notification before answering.

    Simulation credentials only. The answer shows the attempt with its final status.
    """
    sandbox = current()
    env = environment()
    if env != "simulation":
        raise ApiError(403, "order events need simulation credentials")
    template = parse_order(read_json(required=False))
    created = sandbox.store.create_orders(env, template)[0]
    assert created.attempt_id is not None
    sandbox.deliverer.deliver(created.attempt_id)
    return jsonify(sandbox.store.order_event(env, created.request_id, created.attempt_id))
