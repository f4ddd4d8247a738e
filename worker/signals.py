"""Process start-up and shut-down hooks of worker and beat.

A worker or beat that lacks what its role needs (Pax8 credentials, a loadable vendor
adapter) stops at start with one line naming the setting, rather than failing every
order later.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import signals

from config.logging import configure_logging, log_start
from config.settings import ConfigError, Role
from worker.app import settings


def _require(role: Role) -> None:
    try:
        settings.require(role)
        if role == "worker":
            from vendors.loader import Adapters

            Adapters(settings).check()
    except ConfigError as exc:
        print(f"fulfillment: configuration error: {exc}", file=sys.stderr, flush=True)
        # os._exit: Celery catches SystemExit raised inside some signal handlers.
        os._exit(2)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings.log_level, settings.log_format)


@signals.worker_init.connect
def _worker_init(**_: Any) -> None:
    # worker_init comes before Celery's setup_logging: configure now, so the first line is ours.
    configure_logging(settings.log_level, settings.log_format)
    log_start("worker")
    _require("worker")
    from sentry_sdk.integrations.celery import CeleryIntegration

    from config.sentry import init_sentry

    init_sentry(settings, "worker", [CeleryIntegration(monitor_beat_tasks=True)])


@signals.beat_init.connect
def _beat_init(**_: Any) -> None:
    configure_logging(settings.log_level, settings.log_format)
    log_start("beat")
    _require("beat")
    from sentry_sdk.integrations.celery import CeleryIntegration

    from config.sentry import init_sentry

    init_sentry(settings, "beat", [CeleryIntegration(monitor_beat_tasks=True)])


@signals.worker_process_init.connect
def _process_init(**_: Any) -> None:
    # Clients are built lazily in each pool process; drop anything inherited from the parent.
    from tasks.context import reset_context

    reset_context()


@signals.worker_process_shutdown.connect
def _process_shutdown(**_: Any) -> None:
    from tasks.context import reset_context

    reset_context()
