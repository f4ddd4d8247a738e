"""Build a Celery app from one :class:`~config.settings.Settings`: :func:`create_celery`.

Like warehouse's ``tasks.py``: the app is built from the settings it is handed (never from
the environment), every setting is spelled out in :func:`worker.config.celery_config`, and
every task gets one base class (:class:`tasks.base.FulfillmentTask`), which takes its
collaborators from :attr:`FulfillmentCelery.services`. The receiver and the CLI build an
app of their own only to publish (no tasks, no process hooks); ``worker/app.py`` builds the
one ``celery -A worker.app`` runs, with the worker's and beat's start-up hooks.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from config.settings import Settings
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from worker import broker
from worker.config import celery_config
from worker.publish import CeleryPublisher

TASK_MODULES = ("tasks.provision", "tasks.report", "tasks.reconcile", "tasks.usage", "tasks.doctor")


class FulfillmentCelery(Celery):  # type: ignore[misc]  # Celery is untyped
    """A Celery app that carries its settings and each process's services."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__("fulfillment", **kwargs)
        self.settings = settings
        self._services: Services | None = None
        self._services_pid = 0

    @property
    def services(self) -> Services:
        """This process's services, built on first use after a fork (pool processes never
        share the parent's connections)."""
        if self._services is None or self._services_pid != os.getpid():
            self._services = Services(
                self.settings,
                use=RedisUse.WORKER,
                publisher_factory=lambda: CeleryPublisher(self, self.settings.routes),
            )
            self._services_pid = os.getpid()
        return self._services

    def close_services(self) -> None:
        """Close this process's services (at pool process exit)."""
        if self._services is not None and self._services_pid == os.getpid():
            self._services.close()
        self._services = None


def create_celery(settings: Settings, *, hooks: bool = False) -> FulfillmentCelery:
    """The Celery app for ``settings``.

    ``hooks``: the app that worker and beat processes run (``worker/app.py``): it includes
    the task modules and connects the start-up checks, logging and Sentry set-up. Without
    it (the receiver, the CLI) the app only publishes.
    """
    broker.install()  # before any connection resolves the redis:// scheme
    app = FulfillmentCelery(
        settings,
        include=list(TASK_MODULES) if hooks else [],
        task_cls="tasks.base:FulfillmentTask",
        set_as_current=hooks,
    )
    app.conf.update(celery_config(settings))
    if hooks:
        from worker.handback import HandBack
        from worker.pool import GreenSweep
        from worker.signals import connect

        app.steps["worker"].add(HandBack)
        app.steps["consumer"].add(GreenSweep)
        connect(settings, app.close_services)
    return app
