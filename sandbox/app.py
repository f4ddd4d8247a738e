"""The Flask app factory: ``create_app(config)`` wires the Pax8 routes and the control plane.

The sandbox runs on developers' machines, where any web page the developer visits can send
it requests. So before anything else, every request must name the sandbox by an address or
``localhost`` (or a name of ``--allowed-hosts``) in its ``Host``: a page that rebinds its own
name to 127.0.0.1 (DNS rebinding) gets a ``400``, never ``/sandbox/config``'s secrets. And
every write to the control plane must be ``application/json``, which a cross-origin page can
only send after a CORS preflight the sandbox never grants: a form or ``text/plain`` POST is a
``415``, so no page can inject orders or point deliveries elsewhere. Every answer carries
``X-Content-Type-Options: nosniff``.

Two more app-wide hooks sit in front of the routes, for every path outside ``/sandbox``: the
first counts the call and fires a fault rule if one matches (an ``error`` answers at once, a
``delay`` sleeps); the second, after the route ran, applies ``error_after`` and
``delay_after``, so the work is stored before the client sees the failure.
"""

import ipaddress
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
    app.before_request(_guard)
    app.before_request(_before)
    app.after_request(_after)
    app.after_request(_no_sniff)
    return app


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_allowed(host: str, names: frozenset[str]) -> bool:
    """Whether a ``Host`` header names this sandbox: an IP address (no rebinding needs one),
    ``localhost``, or one of ``names``; with or without a port."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name in names:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _guard() -> Response | None:
    sandbox = current()
    if not host_allowed(request.host, sandbox.config.host_names):
        return error_response(
            400,
            "the sandbox answers requests for localhost or an IP address only "
            "(--allowed-hosts adds names)",
        )
    if (
        request.method in WRITES
        and request.path.startswith("/sandbox/")
        and request.mimetype != "application/json"
    ):
        return error_response(415, "control-plane writes must be Content-Type: application/json")
    return None


def _no_sniff(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


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
