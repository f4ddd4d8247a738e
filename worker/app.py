"""The Celery app: ``celery -A worker.app worker`` / ``beat`` / ``flower``.

A shim: it reads the settings (a malformed one stops the process with one line), builds
the app from :func:`worker.config.celery_config` and connects the signals. Task modules
are imported by the worker at start (``include``), never by the receiver.
"""

from __future__ import annotations

from celery import Celery

from config.settings import load_settings
from worker import broker
from worker.config import celery_config

settings = load_settings()
broker.install()  # before any connection resolves the redis:// scheme

app = Celery("fulfillment", include=["tasks.provision", "tasks.report", "tasks.reconcile"])
app.conf.update(celery_config(settings))

import worker.signals  # noqa: E402,F401  (connects the handlers; needs ``app`` first)
