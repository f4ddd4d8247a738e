"""``python -m console`` (the Procfile's ``console`` line): the console under gunicorn.

The address comes from the settings (``CONSOLE_HOST``, ``CONSOLE_PORT``), checked before
anything listens: beyond loopback only with ``CONSOLE_USERS``. One process (the CSRF and
session key live in it) with a few threads: an operator's console, not a public site.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from config.logging import configure_logging, log_start
from config.scrub import Scrubber
from config.settings import load_settings
from console.app import create_console
from fulfillment.ledger.migrations import check_at_start
from fulfillment.runtime.clients import RedisUse
from worker.services import build_services


class ConsoleServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn with the console app and options from the settings, not the command line."""

    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Our options, nothing from ``sys.argv``."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """The app, built once."""
        return self.app


def main() -> None:
    """Check the settings and the ledger's schema, build the console, serve it."""
    settings = load_settings("console")
    configure_logging(settings.log_level, settings.log_format, Scrubber.from_settings(settings))
    log_start("console")
    services = build_services(settings, RedisUse.CLI)
    check_at_start(services.ledger, migrate_at_start=settings.ledger_migrate_at_start)
    app = create_console(settings, services)
    host, port = settings.console_host.strip("[]"), settings.console_port
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    logging.getLogger("console").warning(
        "console: http://%s/ (%s)", bind, "basic auth" if settings.console_users else "no users"
    )
    ConsoleServer(
        app,
        {
            "bind": bind,
            "workers": 1,
            "worker_class": "gthread",
            "threads": 4,
            # A reconciliation run by hand may take a while; gthread keeps the worker
            # alive meanwhile, this bounds a stuck request.
            "timeout": 180,
            "graceful_timeout": 10,
            "loglevel": "warning",
            "accesslog": None,
        },
    ).run()


if __name__ == "__main__":
    main()
