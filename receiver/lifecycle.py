"""How long the receiver may take to stop: gunicorn's graceful timeout.

A CloudBlue call waits in the receiver for its outcome, up to
``CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS``. A receiver told to stop (a deploy, ``docker compose
stop``) stops accepting at once and lets each request in hand finish; the graceful timeout
must outlast that wait, or gunicorn kills its workers while calls still wait and the
platform sees its connection reset instead of the 200 (or the 503 with ``Retry-After`` at
the deadline) it would have had. A Pax8 webhook takes milliseconds, so only a receiver with
waiting calls takes this long to stop.
"""

from __future__ import annotations

import math

from config.settings import Settings

MARGIN_SECONDS = 5
"""Beyond the longest wait: the answer's own write, and the last Redis read before it."""

FALLBACK_SECONDS = 30
"""When the settings do not load (the app's import then stops the process, naming the
setting)."""


def graceful_timeout_seconds(settings: Settings | None) -> int:
    """gunicorn's ``graceful_timeout`` for these settings: the CloudBlue wait plus
    :data:`MARGIN_SECONDS`."""
    if settings is None:
        return FALLBACK_SECONDS
    return math.ceil(settings.cloudblue_response_timeout_seconds) + MARGIN_SECONDS
