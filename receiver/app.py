"""The receiver's app factory: ``create_app(settings)``."""

from __future__ import annotations

from flask import Flask

from config.logging import configure_logging
from config.settings import Settings, load_settings
from fulfillment.clients import redis_client
from fulfillment.intake import Publisher
from fulfillment.ledger import Ledger
from receiver.auth import SecretChecker
from receiver.errors import register_error_handlers
from receiver.webhooks import Receiver

MAX_BODY = 256 * 1024


def create_app(settings: Settings | None = None, publisher: Publisher | None = None) -> Flask:
    """Build the receiver for ``settings`` (read from the environment when omitted)."""
    settings = settings or load_settings("receiver")
    app = Flask("receiver")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if publisher is None:
        from worker.app import app as celery_app
        from worker.publish import CeleryPublisher

        publisher = CeleryPublisher(celery_app)
    app.extensions["fulfillment"] = Receiver(
        settings=settings,
        ledger=Ledger(redis_client(settings)),
        publisher=publisher,
        pax8_secrets=SecretChecker(
            settings.pax8_webhook_secrets, settings.pax8_simulation_webhook_secrets
        ),
        cloudblue_secrets=SecretChecker(settings.cloudblue_webhook_secrets),
    )
    register_error_handlers(app)
    from receiver.health import bp as health_bp
    from receiver.webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)
    app.register_blueprint(health_bp)
    if settings.sentry_dsn is not None:
        # Imported only when used: sentry_sdk is a third of the receiver's memory.
        from sentry_sdk.integrations.flask import FlaskIntegration

        from config.sentry import init_sentry

        init_sentry(settings, "receiver", [FlaskIntegration()])
    return app


def configure_process(settings: Settings) -> None:
    """Process-wide set-up for a receiver started by gunicorn."""
    configure_logging(settings.log_level, settings.log_format)
