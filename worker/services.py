"""The services of a process that only publishes (the receiver, the console, the CLI), with a
publisher on a Celery app of the same settings.

A worker's own app builds the services of its pool processes itself
(:attr:`worker.factory.FulfillmentCelery.services`), on that app: nothing here is imported by
the factory, so the two never import each other.
"""

from __future__ import annotations

from config.settings import Settings
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from worker.factory import create_celery
from worker.publish import CeleryPublisher


def build_services(settings: Settings, use: RedisUse) -> Services:
    """Services for ``settings``: tasks are published through a Celery app built from the
    same settings (on first use), so they go to the same Redis."""

    def publisher() -> CeleryPublisher:
        return CeleryPublisher(create_celery(settings), settings.routes)

    return Services(settings, use=use, publisher_factory=publisher)
