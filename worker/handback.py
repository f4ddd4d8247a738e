"""A worker told to stop hands back at once the messages it holds and has not started.

With late acknowledgement and a prefetch of 1 a worker holds only what it runs, and the
countdown retries it took from the queue to wait for their time (Celery raises the prefetch
for each). On a warm shutdown (SIGTERM: a deploy) Celery stops consuming and waits for the
running orders to end, up to the hard time limit; the countdown retries it holds would wait
with it and go back only as the channel closes, when the worker exits. :class:`HandBack`
puts them back as the shutdown starts, at the front of their queues, so the next worker
takes them at once (they still run at their own time: the ETA travels with the message).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker import state

from worker.broker import HeldQoS

log = logging.getLogger(__name__)


class HandBack(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """A worker step: as the worker's shutdown begins (before the consumer stops and drops
    its countdown retries, and long before the pool's running orders end), cancels the
    timers of the countdown retries not started yet and hands their messages back."""

    def close(self, worker: Any) -> None:
        """Hand back the countdown retries this worker holds and has not started."""
        consumer = getattr(worker, "consumer", None)
        timer = getattr(consumer, "timer", None)
        handed = 0
        for request in list(state.scheduled_requests):
            if request in state.active_requests or request in state.reserved_requests:
                continue
            entry = getattr(request, "_eta_timer_entry", None)
            if entry is not None and timer is not None:
                timer.cancel(entry)
            message = request.message
            qos = getattr(message.channel, "qos", None)
            try:
                if isinstance(qos, HeldQoS):
                    qos.hand_back(message)
                else:
                    message.reject(requeue=True)
            except Exception:  # noqa: BLE001 - the channel's close restores it anyway
                log.exception("could not hand back %s[%s]", request.name, request.id)
                continue
            state.scheduled_requests.discard(request)
            state.requests.pop(request.id, None)
            handed += 1
            log.info(
                "%s[%s]: not started (due at %s), handed back for the next worker",
                request.name,
                request.id,
                request.eta,
            )
        if handed:
            log.warning(
                "shutting down: %d countdown retr%s handed back to the queue at once",
                handed,
                "y" if handed == 1 else "ies",
            )
