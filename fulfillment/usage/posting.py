"""Post one job: a subscription's current totals for a period, from the source to Pax8.

:func:`post_job` claims the job, asks the vendor's usage source for the period's lines (as
of the usage clock's now), splits them into batches (:mod:`fulfillment.usage.batches`),
and posts each batch under the shared rate limit (:mod:`fulfillment.usage.limiter`).
Every post is recorded with the lines sent and Pax8's answer. The outcome:

* every batch 2xx: ``posted`` (and, after the period's end, its closing totals are in);
* 429 (Pax8 took nothing): handed back to resume at the refused batch, after Retry-After;
* 5xx, a timeout, no answer (the batch may or may not be stored): handed back to post
  again from the first batch, whose overwrite resets the day's lines, after a backoff;
* past ``USAGE_MAX_RETRIES``: ``failed`` for the day (the next run posts again; the
  previous period's closing totals are tried on the 1st and the 2nd, then alerted);
* any other 4xx: ``refused`` (the same lines would be refused again);
* the source cannot answer now: retried like a 5xx; refuses or answers lines Pax8 would
  refuse: ``source_error``; has no lines: ``empty``;
* the period's cutoff has passed: ``too_late``, nothing sent.

:func:`post_now` is ``fulfill usage post``: the same, for one subscription and period, in
the calling process, refused locally once the cutoff has passed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from fulfillment.ledger.keys import split_usage_job, usage_job, usage_member
from fulfillment.ledger.refs import Scope
from fulfillment.usage import periods
from fulfillment.usage.batches import Batch, batches
from fulfillment.usage.clock import iso
from fulfillment.usage.context import UsageContext
from fulfillment.usage.limiter import OutOfTime, wait_for_turn
from fulfillment.usage.models import JobOutcome, Subscription
from pax8.errors import HeldOff, PermanentError, RateLimited, ServerError, TransientError
from pax8.usage import LINES, UsageLine, UsageTarget
from vendors.errors import PermanentVendorError, TransientVendorError
from vendors.usage import UsageQuery

log = logging.getLogger(__name__)

ANSWER_MAX = 2000
"""How much of Pax8's answer body each post record keeps."""


@dataclass
class JobResult:
    """What posting one job came to."""

    job: str
    outcome: JobOutcome | None = None
    """How the job ended; None when it did not end here (busy, done, handed back)."""
    retry_in: float | None = None
    """Hand the job to a new task after this many seconds."""
    note: str = ""
    posts: int = 0
    lines: int = 0
    rate_limited: int = 0


@dataclass
class ChunkResult:
    """What one task's jobs came to."""

    results: list[JobResult] = field(default_factory=list)
    leftover: list[str] = field(default_factory=list)
    """Jobs not started before the task's budget ran out."""

    @property
    def retries(self) -> list[tuple[str, float]]:
        """(job, countdown) of every job handed back."""
        return [(r.job, r.retry_in) for r in self.results if r.retry_in is not None]

    def counts(self) -> dict[str, int]:
        """Outcomes, posts, lines and 429s of the chunk."""
        out: dict[str, int] = {"posts": 0, "lines": 0, "rate_limited": 0, "retries": 0}
        for r in self.results:
            out["posts"] += r.posts
            out["lines"] += r.lines
            out["rate_limited"] += r.rate_limited
            out["retries"] += r.retry_in is not None
            if r.outcome is not None:
                out[r.outcome.value] = out.get(r.outcome.value, 0) + 1
        return out


def post_jobs(
    context: UsageContext,
    day: str,
    jobs: Sequence[str],
    token: str,
    sleep: Callable[[float], None] = time.sleep,
) -> ChunkResult:
    """Post ``jobs`` of ``day``'s run one after the other, within the task's budget."""
    deadline = time.monotonic() + context.policy.budget_seconds
    out = ChunkResult()
    for index, job in enumerate(jobs):
        if time.monotonic() >= deadline:
            out.leftover = list(jobs[index:])
            break
        out.results.append(post_job(context, day, job, token, deadline, sleep))
    return out


class _Job:
    """One claimed job on its way to Pax8."""

    def __init__(
        self,
        context: UsageContext,
        day: str,
        job: str,
        token: str,
        attempts: int,
        sub: Subscription,
        period: str,
        now: datetime,
    ) -> None:
        self.context, self.day, self.job, self.token = context, day, job, token
        self.attempts, self.sub, self.period, self.now = attempts, sub, period, now
        self.result = JobResult(job)

    def finish(self, outcome: JobOutcome, message: str = "", lines: int = 0) -> JobResult:
        answer = self.context.store.finish(
            self.day,
            self.job,
            self.token,
            outcome,
            scope=self.sub.scope,
            subscription_id=self.sub.id,
            period=self.period,
            closing=self.now >= periods.end(self.period),
            message=message,
            lines=lines,
        )
        if answer == "ok":
            self.result.outcome = outcome
        else:
            self.result.note = f"finish {answer}"
        if outcome not in (JobOutcome.POSTED, JobOutcome.EMPTY):
            log.warning(
                "usage %s (%s) of %s: %s: %s", self.job, self.period, self.day, outcome, message
            )
        return self.result

    def retry(
        self, error: str, next_batch: int, lines: str, retry_after: float | None
    ) -> JobResult:
        policy = self.context.policy.retry
        if policy.exhausted(self.attempts - 1):
            return self.finish(JobOutcome.FAILED, f"after {self.attempts} tries: {error}")
        self.context.store.hand_back(self.day, self.job, self.token, next_batch, lines, error)
        self.result.retry_in = policy.delay(self.attempts - 1, retry_after)
        self.result.note = error
        return self.result


def post_job(
    context: UsageContext,
    day: str,
    job: str,
    token: str,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobResult:
    """Post one job of ``day``'s run (see the module docstring)."""
    store = context.store
    try:
        scope, subscription_id, period = split_usage_job(job)
    except ValueError:
        return JobResult(job, note="not a job name")
    claim = store.claim(day, job, token, context.policy.lease_seconds)
    if claim.action != "claimed":
        return JobResult(job, note=claim.action)
    now = context.clock.now()
    sub = claim.subscription or Subscription(scope, subscription_id, None)
    work = _Job(context, day, job, token, claim.attempts, sub, period, now)
    if now >= periods.cutoff(period):
        return work.finish(JobOutcome.TOO_LATE, _too_late(period))
    if claim.next_batch and claim.lines:
        lines = LINES.validate_json(claim.lines)
    else:
        found = _source_lines(context, sub, period, now)
        if isinstance(found, str):
            return work.finish(JobOutcome.SOURCE_ERROR, found)
        if isinstance(found, TransientVendorError):
            return work.retry(f"the usage source: {found}", 0, "", found.retry_after)
        lines = found
    if not lines:
        return work.finish(JobOutcome.EMPTY, "the source has no usage for the period")
    return _send(work, batches(lines), lines, claim.next_batch, deadline, sleep)


def _source_lines(
    context: UsageContext, sub: Subscription, period: str, now: datetime
) -> list[UsageLine] | str | TransientVendorError:
    """The source's lines, or why not: a message (it refused, or broke), or a transient
    error (ask again later)."""
    query = UsageQuery(
        subscription_id=sub.id,
        billing_period=period,
        as_of=now,
        is_simulation=sub.simulation,
        product_id=sub.product_id,
        company_id=sub.company_id,
        partner_id=sub.partner_id,
        external_subscription_id=sub.external_id,
        quantity=sub.quantity,
        ended_at=sub.ended_at,
    )
    route = context.route_of(sub)
    if route is None:
        return f"no route of the routes file takes product {sub.product_id}: no usage source"
    try:
        lines = context.adapter(sub.simulation, route).usage(query)
        # Checked again: a source may build lines Pax8 refuses (a key over 255 characters).
        return LINES.validate_python([UsageLine.model_validate(x) for x in lines])
    except TransientVendorError as exc:
        return exc
    except PermanentVendorError as exc:
        return exc.message
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        return f"the source returned a line Pax8 would refuse ({where}: {error.get('msg')})"
    except Exception as exc:  # noqa: BLE001 - a bug in the source fails its job, not the run
        log.exception("usage source failed for %s", sub.member)
        return f"the usage source raised {type(exc).__name__}: {exc}"


def _send(
    work: _Job,
    plan: list[Batch],
    lines: list[UsageLine],
    start: int,
    deadline: float | None,
    sleep: Callable[[float], None],
) -> JobResult:
    context, sub, result = work.context, work.sub, work.result
    target = UsageTarget(subscription_id=sub.id)
    snapshot = LINES.dump_json(lines, by_alias=True).decode()
    for index in range(start, len(plan)):
        batch = plan[index]
        try:
            wait_for_turn(context, deadline, sleep)
        except OutOfTime as exc:
            return work.retry("the task's time ran out waiting for the rate limit", index,
                              snapshot, exc.wait)  # fmt: skip
        record = {
            "at": time.time(),
            "now": iso(work.now),
            "day": work.day,
            "scope": str(sub.scope),
            "subscriptionId": sub.id,
            "period": work.period,
            "batch": index + 1,
            "batches": len(plan),
            "overwrite": batch.overwrite,
            "attempt": work.attempts,
            "lines": [line.model_dump(mode="json", by_alias=True) for line in batch.lines],
        }
        try:
            answer = context.client.post_lines(
                target,
                work.period,
                batch.lines,
                overwrite=batch.overwrite,
                simulation=sub.simulation,
            )
        except HeldOff as exc:
            # Not sent (the client holds off after a 429): nothing to record as a post.
            return work.retry(str(exc), index, snapshot, exc.retry_after)
        except RateLimited as exc:
            _record(work, record, 429, str(exc), {"posts_rate_limited": 1})
            result.rate_limited += 1
            return work.retry(str(exc), index, snapshot, exc.retry_after)
        except TransientError as exc:
            status = exc.status_code if isinstance(exc, ServerError) else 0
            _record(work, record, status, str(exc), {"posts_failed": 1})
            # The batch may have been stored: post again from the first (overwrite) batch.
            return work.retry(str(exc), 0, "", exc.retry_after)
        except PermanentError as exc:
            status = getattr(exc, "status_code", 0)
            _record(work, record, status, str(exc), {"posts_refused": 1})
            return work.finish(JobOutcome.REFUSED, str(exc))
        _record(
            work, record, answer.status, answer.body, {"posts_ok": 1, "lines_ok": len(batch.lines)}
        )
        result.posts += 1
        result.lines += len(batch.lines)
    return work.finish(JobOutcome.POSTED, f"{len(lines)} lines in {len(plan)} posts", len(lines))


def _record(
    work: _Job, record: dict[str, object], status: int, answer: object, counts: dict[str, int]
) -> None:
    text = answer if isinstance(answer, str) else json.dumps(answer, default=str)
    record.update(status=status, answer=text[:ANSWER_MAX])
    work.context.store.record_post(work.sub.scope, work.sub.id, work.period, record, counts)


def _too_late(period: str) -> str:
    return (
        f"billing period {period} closed at {iso(periods.cutoff(period))} (Pax8 takes no usage "
        "for it after midnight UTC ending the 2nd of the next month)"
    )


# -- by hand ---------------------------------------------------------------------------------


class TooLate(Exception):
    """The period's cutoff has passed: Pax8 would refuse the post, so none is sent."""

    def __init__(self, period: str) -> None:
        super().__init__(period)
        self.period = period

    def __str__(self) -> str:
        return _too_late(self.period)


def post_now(
    context: UsageContext, scope: Scope, subscription_id: str, period: str, token: str
) -> JobResult:
    """Post one subscription's period now, in this process (``fulfill usage post``).

    It is a one-job run of its own (``manual-<date>-<token>``), recorded like every post
    of the daily run; retries wait here. Posting while the daily run posts the same
    subscription is harmless: each post carries the period's whole totals and overwrites
    the day's lines, as at Pax8. Raises :class:`TooLate` without posting once the period's
    cutoff has passed, ValueError for a period that has not begun.
    """
    periods.check_period(period)
    now = context.clock.now()
    if now >= periods.cutoff(period):
        raise TooLate(period)
    if now < periods.start(period):
        raise ValueError(f"billing period {period} has not begun")
    day = f"manual-{now.date().isoformat()}-{token[:8]}"
    job = usage_job(usage_member(scope, subscription_id), period)
    context.store.plan(day, iso(now), [job])
    result = post_job(context, day, job, token)
    while result.retry_in is not None and result.outcome is None:
        time.sleep(min(result.retry_in, 30.0))
        result = post_job(context, day, job, token)
    return result
