"""The console's app factory: ``create_console(settings, services)``."""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask, Response, abort, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix

from config.scrub import Scrubber
from config.settings import Settings, load_settings
from config.version import LEDGER_SCHEMA, __version__
from console.auth import REALM, Throttle, Users, host_is_loopback, log, retry_after, shown_name
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
    app.session_interface = _Sessions()
    if settings.console_proxies:
        # The client's address and scheme as the proxies saw them; Host stays as sent.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.console_proxies, x_proto=settings.console_proxies
        )
    app.extensions[EXTENSION] = Console(
        settings,
        services,
        Users(settings.console_users),
        Scrubber.from_settings(settings),
        Throttle(),
    )
    # Every value a template prints can be sent as UTF-8: a lone surrogate is valid JSON, so
    # a webhook may carry one, and it would make its page a 500 (it is shown escaped).
    app.jinja_env.finalize = _encodable
    app.before_request(_gate)
    app.after_request(_headers)
    app.register_error_handler(HTTPException, _error)
    for unavailable in REDIS_UNAVAILABLE:
        app.register_error_handler(unavailable, _redis_down)
    app.jinja_env.globals.update(csrf_token=csrf_token, states=[s.value for s in State])
    app.context_processor(_versions)
    app.jinja_env.filters.update(when=_when, age=_age)
    app.register_blueprint(pages)
    return app


class _Sessions(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` whenever the request came over TLS (directly, or as
    a trusted proxy's ``X-Forwarded-Proto`` says: ``CONSOLE_PROXIES``)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _encodable(value: Any) -> Any:
    """``value`` as a template prints it, with any lone surrogate shown as its escape."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        fixed = value.encode("utf-8", "backslashreplace").decode("utf-8")
        # Markup (already escaped) stays Markup: the same type, the fixed text.
        return type(value)(fixed) if hasattr(value, "__html__") else fixed
    return value


def _gate() -> Response | None:
    """Authenticate (with users), or check the Host (anonymous loopback, asked for by name)."""
    ctx = console()
    if ctx.users.required:
        return _sign_in(ctx)
    if not ctx.settings.console_anonymous:
        # Built without users and without asking for anonymous loopback: nobody gets in.
        abort(403, description="The console has no users: set CONSOLE_USERS.")
    if not host_is_loopback(request.host):
        abort(400, description="The console answers on 127.0.0.1 or localhost only.")
    return None


def _sign_in(ctx: Console) -> Response | None:
    """Basic auth against the users; failures logged and throttled per name and client."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return _challenge()
    name, client = auth.username or "", request.remote_addr or "-"
    if ctx.users.recent(name, auth.password, client):
        return None
    wait = ctx.throttle.wait(name, client)
    if wait > 0:
        log.warning(
            "console: sign-in refused for user %s from %s: too many failures (%ds left)",
            shown_name(name),
            client,
            wait,
        )
        response = Response(
            "Too many failed sign-ins: try again later.\n", 429, mimetype="text/plain"
        )
        response.headers["Retry-After"] = retry_after(wait)
        return response
    if ctx.users.check(name, auth.password, client):
        ctx.throttle.succeeded(name)
        return None
    ctx.throttle.failed(name, client)
    log.warning("console: sign-in failed for user %s from %s", shown_name(name), client)
    return _challenge()


def _challenge() -> Response:
    response = Response("Sign in to use the console.\n", 401, mimetype="text/plain")
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


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


def _versions() -> dict[str, Any]:
    """The footer's: this release, and the schema the ledger's data is at (None: unknown now,
    or not stamped), beside the one this release reads."""
    try:
        schema = console().services.ledger.ping_schema()
    except REDIS_UNAVAILABLE:
        schema = None
    return {"release": __version__, "data_schema": schema, "reads_schema": LEDGER_SCHEMA}


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
