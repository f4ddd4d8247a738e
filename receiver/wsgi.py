"""gunicorn entry point: ``gunicorn receiver.wsgi:app`` (see the Procfile).

Before the app is built, the ledger's schema is checked (and migrated when that is safe:
``fulfillment/ledger/migrations.py``); data this release cannot use stops gunicorn's master
with one line, before anything listens.
"""

import gc

from config.logging import log_start
from config.settings import load_settings
from fulfillment.ledger.migrations import check_at_start
from fulfillment.runtime.clients import RedisUse
from receiver.app import configure_process, create_app
from worker.services import build_services

settings = load_settings("receiver")
configure_process(settings)
log_start("receiver")
services = build_services(settings, RedisUse.RECEIVER)
check_at_start(services.ledger, migrate_at_start=settings.ledger_migrate_at_start)
app = create_app(settings, services)
# With --preload everything above is shared with the workers: keep it out of the
# collector, so a full collection in a worker neither walks it (50-185 ms pauses were
# measured on 2 cores, in the p99 of webhook answers) nor writes to its pages.
gc.freeze()
