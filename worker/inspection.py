"""The running workers through Celery's remote control, for ``fulfill doctor``.

:class:`CeleryWorkers` implements :class:`fulfillment.doctor.context.Workers`: which queues
each worker consumes (Celery's own ``active_queues``) and each worker's wall clock (the
``fulfillment_clock`` inspect command below, which every worker registers by importing
this module: ``tasks/doctor.py`` does). A worker answers control commands from its main
process, so a busy pool still answers.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.worker.control import inspect_command

CLOCK_COMMAND = "fulfillment_clock"


@inspect_command(name=CLOCK_COMMAND)
def fulfillment_clock(state: Any, **kwargs: Any) -> dict[str, float]:
    """This worker's wall clock (``time.time()``), for the doctor's clock check."""
    return {"time": time.time()}


class CeleryWorkers:
    """Asks the workers on the broker of ``app``."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def queues(self, timeout: float) -> dict[str, list[str]]:
        """Worker name → the queues it consumes (every worker that answered in time)."""
        replies: Any = self.app.control.inspect(timeout=timeout).active_queues() or {}
        out: dict[str, list[str]] = {}
        for worker, queues in dict(replies).items():
            names = [str(q.get("name")) for q in queues or [] if isinstance(q, dict)]
            out[str(worker)] = names
        return out

    def clocks(self, timeout: float) -> dict[str, float | None]:
        """Worker name → its clock when it answered (None when it has no such command)."""
        replies: Any = self.app.control.broadcast(CLOCK_COMMAND, reply=True, timeout=timeout)
        out: dict[str, float | None] = {}
        for reply in replies or []:
            for worker, answer in dict(reply).items():
                at = answer.get("time") if isinstance(answer, dict) else None
                out[str(worker)] = float(at) if isinstance(at, int | float) else None
        return out
