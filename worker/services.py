"""The services of a process, with a publisher on a Celery app of the same settings."""

from __future__ import annotations

from config.settings import Settings
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from worker.factory import FulfillmentCelery, create_celery
from worker.publish import CeleryPublisher


def build_services(
    settings: Settings, use: RedisUse, celery: FulfillmentCelery | None = None
) -> Services:
    """Services for ``settings``: tasks are published through ``celery`` (a worker's own
    app), or through an app built from the same settings, so they go to the same Redis."""

    def publisher() -> CeleryPublisher:
        return CeleryPublisher(celery if celery is not None else create_celery(settings))

    return Services(settings, use=use, publisher_factory=publisher)
