"""The receiver's app factory: ``create_app(settings, services)``."""

from __future__ import annotations

from flask import Flask, Response

from config.logging import configure_logging
from config.scrub import Scrubber
from config.settings import Settings, load_settings
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from receiver.auth import SecretChecker
from receiver.errors import register_error_handlers
from receiver.webhooks import Receiver

MAX_BODY = 256 * 1024


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """Build the receiver for ``settings`` (read from the environment when omitted).

    ``services`` defaults to ones built from ``settings`` (a ledger and a publisher on the
    Redis of ``REDIS_URL``); tests pass their own.
    """
    settings = settings or load_settings("receiver")
    if services is None:
        from worker.services import build_services

        services = build_services(settings, RedisUse.RECEIVER)
    # Built now, not at the first webhook: with gunicorn's --preload the workers share it.
    _ = services.publisher
    app = Flask("receiver")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["fulfillment"] = Receiver(
        settings=settings,
        services=services,
        pax8_secrets=SecretChecker(
            settings.pax8_webhook_secrets, settings.pax8_simulation_webhook_secrets
        ),
        cloudblue_secrets=SecretChecker(settings.cloudblue_webhook_secrets),
        routes=services.settings.routes,
    )
    register_error_handlers(app)
    app.after_request(_no_sniff)
    from receiver.cloudblue import bp as cloudblue_bp
    from receiver.health import bp as health_bp
    from receiver.webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)
    app.register_blueprint(cloudblue_bp)
    app.register_blueprint(health_bp)
    if settings.sentry_dsn is not None:
        # Imported only when used: sentry_sdk is a third of the receiver's memory.
        from sentry_sdk.integrations.flask import FlaskIntegration

        from config.sentry import init_sentry

        init_sentry(settings, "receiver", [FlaskIntegration()])
    return app


def _no_sniff(response: Response) -> Response:
    """Every answer is JSON and says so: no browser may read it as anything else."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def configure_process(settings: Settings) -> None:
    """Process-wide set-up for a receiver started by gunicorn."""
    configure_logging(settings.log_level, settings.log_format, Scrubber.from_settings(settings))
