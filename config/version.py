"""The package's version, as installed: what ``fulfill --version``, the start log line and
the ``User-Agent`` of every outgoing call report.

Read from the installed distribution's metadata (``pyproject.toml`` is the one place the
number is written); a source tree that was never installed reports ``0+unknown``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "pax8-fulfillment"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a tree that was never pip-installed
    __version__ = "0+unknown"

USER_AGENT = f"{DISTRIBUTION}/{__version__}"
