"""The base class of every fulfilment task: its process's services, and one mapping of a
domain :class:`~fulfillment.workflow.outcomes.Outcome` to Celery.

A Redis outage inside a task (restarting, unreachable, loading its AOF, a replica after a
failover) must not lose the order: with late acknowledgement a task that raises is
acknowledged, i.e. its message is gone. So the message is rejected with requeue instead:
put back at once if Redis answers again, otherwise left unacknowledged, and redelivered
after the visibility timeout.

A write the replicas did not confirm (``REDIS_WAIT_REPLICAS``; Redis itself answers) is
tried again after a countdown instead, so a missing replica neither spins the message
through the queue nor spends the order's budgets.

Under the gevent pool the task's soft time limit is raised here (:func:`worker.pool.soft_limit`):
Celery's gevent pool applies only the hard one.

A message of a format this worker does not read (a newer release's, during a rolling
deploy that skipped a step: ``worker/messages.py``) is not run at all: it is handed back
unchanged (a retry keeps every header and argument) after :data:`HAND_BACK_SECONDS`, for a
worker that reads it, and counts against no budget.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Reject

from config.sentry import capture_dead_order, capture_order_alert
from config.version import MESSAGE_FORMAT
from fulfillment.ledger.refs import Ref
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, NotReplicated
from fulfillment.services import Services
from fulfillment.workflow.outcomes import Next, Outcome
from worker.messages import FORMAT_HEADER, readable
from worker.pool import soft_limit

log = logging.getLogger(__name__)

HAND_BACK_SECONDS = 10.0
"""How long a message this worker cannot read waits before another worker may take it."""


class FulfillmentTask(Task):  # type: ignore[misc]  # Celery is untyped
    """Runs with its worker process's services; hands its message back on a Redis outage."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.request.called_directly and not readable(self.request.headers):
            return self._hand_back(args)
        try:
            with soft_limit(self.app.settings, self._soft_limit()):
                return super().__call__(*args, **kwargs)
        except NotReplicated as exc:
            countdown = self.services.policies.replicas.delay(self.request.retries)
            log.warning("%s%s: %s; again in %.1fs", self.name, args, exc, countdown)
            raise self.retry(countdown=countdown, max_retries=None) from exc
        except REDIS_UNAVAILABLE as exc:
            log.warning("%s%s: Redis unavailable (%s); message handed back", self.name, args, exc)
            raise Reject(exc, requeue=True) from exc

    def _soft_limit(self) -> float | None:
        """This run's soft time limit: the message's, the task's, or the app's."""
        if self.request.called_directly:
            return None
        limits = self.request.timelimit or (None, None)
        soft = limits[1] if len(limits) > 1 else None
        value = soft or self.soft_time_limit or self.app.conf.task_soft_time_limit
        return float(value) if value else None

    def _hand_back(self, args: tuple[Any, ...]) -> Any:
        headers = self.request.headers or {}
        countdown = min(HAND_BACK_SECONDS, self.app.settings.max_countdown_seconds)
        log.error(
            "%s%s: message format %r is not one this worker reads (up to %d): handed back "
            "for a newer worker in %.0fs",
            self.name,
            args,
            headers.get(FORMAT_HEADER),
            MESSAGE_FORMAT,
            countdown,
        )
        raise self.retry(countdown=countdown, max_retries=None)

    @property
    def services(self) -> Services:
        """The services of this worker process (built after the fork)."""
        services: Services = self.app.services
        return services

    def follow(self, outcome: Outcome, ref: Ref) -> str:
        """Do what ``outcome`` says: retry with its countdown, alert, or nothing (an alert
        is tagged with the backend it is about)."""
        tags = {"task": self.name, "scope": ref.scope}
        if outcome.backend:
            tags["backend"] = outcome.backend
        if outcome.next is Next.RETRY:
            if outcome.alert and outcome.error is not None:
                capture_order_alert(ref.id, outcome.error, **tags)
            raise self.retry(countdown=outcome.countdown, max_retries=None, exc=outcome.error)
        if outcome.next is Next.DEAD:
            capture_dead_order(ref.id, outcome.reason, outcome.error, **tags)
        elif outcome.alert and outcome.error is not None:
            capture_order_alert(ref.id, outcome.error, **tags)
        return str(outcome.next)
