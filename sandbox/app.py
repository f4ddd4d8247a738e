"""The Flask app factory: ``create_app(config)`` wires the Pax8 routes and the control plane.

Two app-wide hooks sit in front of the routes, for every path outside ``/sandbox``: the
first counts the call and fires a fault rule if one matches (an ``error`` answers at once, a
``delay`` sleeps); the second, after the route ran, applies ``error_after`` and
``delay_after``, so the work is stored before the client sees the failure.
"""

import time

from flask import Flask, Response, g, request

from sandbox.api import api, token_blueprint
from sandbox.config import SandboxConfig
from sandbox.context import EXTENSION, Sandbox, current
from sandbox.control import control
from sandbox.errors import error_response, register_error_handlers
from sandbox.usage import usage_api, usage_control

PAX8_PREFIXES = ("/v1/", "/v2/")


def create_app(config: SandboxConfig | None = None) -> Flask:
    """A sandbox app for ``config`` (defaults when None), with fresh in-memory state.

    The app starts delivery threads only when it first delivers; call
    ``app.extensions["pax8_sandbox"].close()`` (or :func:`close_app`) to stop them.
    """
    app = Flask("sandbox")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep Pax8's field order
    app.extensions[EXTENSION] = Sandbox.build(config or SandboxConfig())
    app.register_blueprint(token_blueprint)
    app.register_blueprint(api)
    app.register_blueprint(control)
    app.register_blueprint(usage_api)
    app.register_blueprint(usage_control)
    register_error_handlers(app)
    app.before_request(_before)
    app.after_request(_after)
    return app


def close_app(app: Flask) -> None:
    """Stop the background work of a sandbox app."""
    sandbox = app.extensions[EXTENSION]
    assert isinstance(sandbox, Sandbox)
    sandbox.close()


def _is_pax8_call() -> bool:
    return request.path.startswith(PAX8_PREFIXES) or request.path == "/v1/token"


def _before() -> Response | None:
    if not _is_pax8_call():
        return None
    sandbox = current()
    rule = sandbox.faults.fire(request.method, request.path)
    g.fault = rule
    if rule is None:
        return None
    if rule.action == "error":
        return error_response(
            rule.status, f"injected fault: HTTP {rule.status}", {"fault": rule.id}, rule.headers()
        )
    if rule.action == "delay":
        time.sleep(rule.seconds)
    return None


def _after(response: Response) -> Response:
    if not _is_pax8_call():
        return response
    sandbox = current()
    environment = g.get("environment") or sandbox.tokens.environment(
        request.headers.get("Authorization")
    )
    rule_string = request.url_rule.rule if request.url_rule is not None else None
    sandbox.calls.record(request.method, rule_string, environment)
    rule = g.get("fault")
    if rule is None:
        return response
    if rule.action == "error_after":
        return error_response(
            rule.status, f"injected fault: HTTP {rule.status}", {"fault": rule.id}, rule.headers()
        )
    if rule.action == "delay_after":
        time.sleep(rule.seconds)
    return response
