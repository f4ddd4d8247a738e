"""``fulfillment.usage_tick`` (beat, every ``USAGE_CHECK_INTERVAL_SECONDS``) and
``fulfillment.usage_post`` (a chunk of a day's jobs): thin shims over
:mod:`fulfillment.usage.daily` and :mod:`fulfillment.usage.posting`."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from config.sentry import capture_usage_overdue
from fulfillment.names import USAGE_POST, USAGE_TICK
from fulfillment.usage import periods
from fulfillment.usage.clock import iso
from fulfillment.usage.context import usage_context
from fulfillment.usage.daily import tick
from fulfillment.usage.posting import post_jobs
from tasks.base import FulfillmentTask
from worker.messages import message_headers


@shared_task(name=USAGE_TICK, bind=True, base=FulfillmentTask, queue=USAGE_TICK)
def usage_tick(self: FulfillmentTask) -> dict[str, Any]:
    """Plan, resume or check the day's usage run; hand its jobs to ``usage_post``."""
    result = tick(usage_context(self.services))
    for chunk in result.chunks:
        usage_post.apply_async(args=[result.day, chunk], headers=message_headers())
    if result.check is not None:
        cutoff = iso(periods.cutoff(result.check.period))
        for scope, late in result.check.alert.items():
            names = [o.subscription.id for o in late]
            capture_usage_overdue(result.check.period, str(scope), names, cutoff)
    return result.as_dict()


@shared_task(name=USAGE_POST, bind=True, base=FulfillmentTask, queue=USAGE_POST)
def usage_post(self: FulfillmentTask, day: str, jobs: list[str]) -> dict[str, int]:
    """Post ``jobs`` of ``day``'s run; a job handed back goes out again after its countdown.

    The claim token is the task id: a redelivery of this message (its worker died), or its
    retry after the soft time limit cut a post short (a retry keeps the task id), takes its
    jobs back at once; any other task waits for the claim's lease.
    """
    try:
        result = post_jobs(usage_context(self.services), day, jobs, token=self.request.id)
    except SoftTimeLimitExceeded as exc:
        # The jobs finished are skipped; the one cut short starts over (its claim counts).
        raise self.retry(countdown=1.0, max_retries=None, exc=exc) from exc
    for job, countdown in result.retries:
        usage_post.apply_async(args=[day, [job]], countdown=countdown, headers=message_headers())
    if result.leftover:
        usage_post.apply_async(args=[day, result.leftover], headers=message_headers())
    return result.counts()
