"""Logging set-up: plain text or one JSON object per line (``LOG_FORMAT=json``).

Either way a line cannot be forged and carries no credential: the text format escapes
control characters in the message (a newline in a value cannot start a line of its own; a
terminal escape cannot reach the operator's terminal), JSON escapes by construction, and a
:class:`~config.scrub.ScrubbingFilter` removes every configured secret from every record.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from config.scrub import Scrubber, ScrubbingFilter
from config.version import DISTRIBUTION, LEDGER_SCHEMA, MESSAGE_FORMAT, __version__

CELERY_PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")
"""Where Celery logs each task's "received" and "succeeded" (and "retry") lines at INFO;
its failures stay at ERROR whatever the level."""

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
            data["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL [process] logger: message``, control characters in the message escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(processName)s] %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def escape_controls(text: str) -> str:
    """``text`` with every control character (newline included) shown as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def configure_logging(
    level: str = "INFO", fmt: str = "text", scrubber: Scrubber | None = None
) -> None:
    """Send every logger to stderr in the chosen format (idempotent); with ``scrubber``,
    every record loses the secrets it knows."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if scrubber is not None:
        handler.addFilter(ScrubbingFilter(scrubber))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request access noise from libraries drowns the state-change lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # Celery's per-task "received" and "succeeded" lines repeat what a task's state lines
    # (fulfillment.state: claimed, vendor-ok, result-posted, with the task id) say, at two
    # more formatted and scrubbed lines per order: shown at DEBUG only. Celery reads the
    # level once, when it builds a consumer and a task's tracer: after this.
    per_task = logging.NOTSET if root.getEffectiveLevel() <= logging.DEBUG else logging.WARNING
    for name in CELERY_PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(per_task)


def log_start(component: str) -> None:
    """The first line a process logs: which release of what started, and the ledger schema
    and message format it reads and writes (for support tickets, and for telling the two
    releases of a rolling deploy apart)."""
    logging.getLogger("fulfillment").warning(
        "%s %s: %s starting (pid %d, Python %s; ledger schema %d, message format %d)",
        DISTRIBUTION,
        __version__,
        component,
        os.getpid(),
        sys.version.split()[0],
        LEDGER_SCHEMA,
        MESSAGE_FORMAT,
    )
