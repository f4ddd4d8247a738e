"""The console's collaborators and the accessor its pages use (below the app and the pages).

:func:`console` is what every page calls; it lives here, not in the app factory, so the
pages import it without importing the factory that registers them (as flaskr's blueprints
take ``get_db`` from ``db.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from config.scrub import Scrubber
from config.settings import Settings
from console.auth import Throttle, Users
from fulfillment.services import Services

EXTENSION = "console"
"""Where the app keeps its :class:`Console` (``app.extensions``)."""


@dataclass
class Console:
    """The console's collaborators, built once per process."""

    settings: Settings
    services: Services
    users: Users
    scrubber: Scrubber
    throttle: Throttle


def console() -> Console:
    """The current app's collaborators."""
    found: Console = current_app.extensions[EXTENSION]
    return found
