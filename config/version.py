"""What this release is: its version, and the versions of the formats it keeps in Redis.

* :data:`__version__`: the release, read from the installed distribution's metadata
  (``pyproject.toml`` is the one place the number is written); a source tree that was never
  installed reports ``0+unknown``. ``fulfill --version``, the start line of every process,
  ``/readyz``, the console's footer and the ``User-Agent`` of every outgoing call say it.
* :data:`LEDGER_SCHEMA`: the layout of the ledger's data in Redis that this release reads and
  writes (``fulfillment/ledger/schema.py`` checks it at every start; a change of layout is a
  migration in ``fulfillment/ledger/migrations.py`` and a new number here).
* :data:`MESSAGE_FORMAT`: the format of the Celery task messages this release writes (ids
  as arguments, the order's scope as keyword arguments: ``worker/messages.py``); its workers
  read every format up to it.

``docs/upgrading.md`` says when each number changes and what an operator does about it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "pax8-fulfillment"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a tree that was never pip-installed
    __version__ = "0+unknown"

USER_AGENT = f"{DISTRIBUTION}/{__version__}"

LEDGER_SCHEMA = 1
"""The ledger layout of this release. Schema 1 is the layout 0.1.0 wrote (without a stamp)."""

MESSAGE_FORMAT = 1
"""The task message format of this release. Format 1 is what 0.1.0 wrote (without a header)."""


def describe() -> str:
    """``0.2.0, ledger schema 1, message format 1``: what ``--version`` and start lines say."""
    return f"{__version__}, ledger schema {LEDGER_SCHEMA}, message format {MESSAGE_FORMAT}"
