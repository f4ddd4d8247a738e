"""prometheus_client's multi-process mode for a process kind whose work runs in children.

The receiver's gunicorn workers and the worker's prefork pool processes each write their
metrics to files in one directory; the parent (gunicorn's master, Celery's main process)
merges those files at scrape time. Each parent makes a private directory of its own at
start (``mkdtemp``: 0700, under ``$TMPDIR``, named with its kind and pid), so two process
kinds or two instances on one host never read or wipe each other's files; it removes the
directory at exit, and at start removes those of parents that were killed before they
could. The library asks for two things, both done here: the directory is set before any
value is created (:func:`start`), and a child's live gauges are dropped when it dies
(:func:`child_died`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess, values

ENV = "PROMETHEUS_MULTIPROC_DIR"


PREFIX = "fulfillment-metrics-"


def start(kind: str) -> Path:
    """Make this process tree's metric directory and switch storage to it.

    Call it in the parent before it forks children that record. The environment variable
    is what prometheus_client reads, in this process and in its children; the value class
    is chosen again because prometheus_client chose one when it was first imported, perhaps
    before this process knew it would fork (every metric of :mod:`fulfillment.runtime.metrics` has
    labels, so none has storage yet).
    """
    remove_stale()
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-"))
    os.environ[ENV] = str(path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def remove_stale(parent: Path | None = None) -> list[Path]:
    """Remove the directories of parents that died without cleaning up (killed -9): ours
    (same owner), named with a pid no process has now. Returns what was removed."""
    parent = parent or Path(tempfile.gettempdir())
    removed = []
    for path in parent.glob(f"{PREFIX}*-*-*"):
        try:
            pid = int(path.name[len(PREFIX) :].split("-")[1])
            if path.stat().st_uid != os.getuid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except (ValueError, IndexError, OSError):
            continue  # not one of ours, or a live process (perhaps another's): leave it
    return removed


def registry(path: Path) -> CollectorRegistry:
    """A registry that merges the files every process wrote under ``path``."""
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=str(path))  # type: ignore[no-untyped-call]
    return merged


def child_died(pid: int, path: Path) -> None:
    """Drop the live-gauge files of a child that exited (counters and histograms stay)."""
    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def remove(path: Path) -> None:
    """Delete the directory (at the parent's exit)."""
    shutil.rmtree(path, ignore_errors=True)
