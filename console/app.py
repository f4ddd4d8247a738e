"""The console's app factory: ``create_console(settings, services)``."""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask, Response, abort, request
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from config.scrub import Scrubber
from config.settings import Settings, load_settings
from console.auth import REALM, Users, host_is_loopback
from console.context import EXTENSION, Console, console
from console.csrf import token as csrf_token
from console.pages import bp as pages
from fulfillment.ledger.states import State
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, RedisUse
from fulfillment.services import Services

SECURITY_HEADERS = {
    # No script at all, styles only from here, never framed, forms only to here.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_console(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """Build the console for ``settings`` (read from the environment when omitted)."""
    settings = settings or load_settings("console")
    if services is None:
        from worker.services import build_services

        services = build_services(settings, RedisUse.CLI)
    app = Flask(__name__)
    # Sessions only carry the CSRF token and flashed messages; a restart makes new ones.
    app.config.update(
        SECRET_KEY=secrets.token_bytes(32),
        SESSION_COOKIE_NAME="fulfillment_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=16 * 1024,
    )
    app.extensions[EXTENSION] = Console(
        settings, services, Users(settings.console_users), Scrubber.from_settings(settings)
    )
    app.before_request(_gate)
    app.after_request(_headers)
    app.register_error_handler(HTTPException, _error)
    for unavailable in REDIS_UNAVAILABLE:
        app.register_error_handler(unavailable, _redis_down)
    app.jinja_env.globals.update(csrf_token=csrf_token, states=[s.value for s in State])
    app.jinja_env.filters.update(when=_when, age=_age)
    app.register_blueprint(pages)
    return app


def _gate() -> Response | None:
    """Authenticate (with users) or check the Host (without)."""
    ctx = console()
    if ctx.users.required:
        auth = request.authorization
        ok = auth is not None and auth.type == "basic"
        if not ok or not ctx.users.check(auth.username, auth.password):  # type: ignore[union-attr]
            response = Response("Sign in to use the console.\n", 401, mimetype="text/plain")
            response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
            return response
        return None
    if not host_is_loopback(request.host):
        abort(400, description="The console answers on 127.0.0.1 or localhost only.")
    return None


def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _error(exc: HTTPException) -> Any:
    from flask import render_template

    return render_template("error.html", error=exc), exc.code or 500


def _redis_down(_exc: Exception) -> Any:
    from flask import render_template

    # No error text: it could name where Redis lives; the console's log has it.
    error = ServiceUnavailable("Redis does not answer: the ledger cannot be read now.")
    return render_template("error.html", error=error), 503


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(timestamp)))


def _age(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    seconds = max(0.0, time.time() - float(timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
