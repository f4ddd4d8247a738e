"""Logging set-up: plain text or one JSON object per line (``LOG_FORMAT=json``)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from config.version import DISTRIBUTION, __version__

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the ``fields`` a state-change line carries."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update({k: v for k, v in fields.items() if v not in (None, "")})
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "fields" and not key.startswith("_"):
                data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send every logger to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(processName)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request access noise from libraries drowns the state-change lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def log_start(component: str) -> None:
    """The first line a process logs: which version of what started (for support tickets)."""
    logging.getLogger("fulfillment").warning(
        "%s %s: %s starting (pid %d, Python %s)",
        DISTRIBUTION,
        __version__,
        component,
        os.getpid(),
        sys.version.split()[0],
    )
