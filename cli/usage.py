"""``fulfill usage``: what usage is owed to Pax8, what it was told, and a post by hand."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import click

from cli.context import runtime
from cli.errors import CommandFailed
from cli.output import echo_json, safe, table
from fulfillment.ledger.refs import InvalidId, Scope, check_id
from fulfillment.usage import periods
from fulfillment.usage.clock import FixedClock, iso, parse_time
from fulfillment.usage.context import UsageContext, usage_context
from fulfillment.usage.models import JobOutcome
from fulfillment.usage.overdue import owed
from fulfillment.usage.posting import TooLate, post_now


def _context(at: datetime | None = None) -> UsageContext:
    rt = runtime()
    rt.ledger()  # reachable (or exit 3) and of a schema this release reads (or exit 4), up front
    return usage_context(rt.services, FixedClock(at) if at else None)


def _scope(simulation: bool) -> Scope:
    return Scope.PAX8_SIMULATION if simulation else Scope.PAX8


def _subscription(value: str) -> str:
    try:
        return check_id(value, "SUBSCRIPTION")
    except InvalidId as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("usage", short_help="Usage reporting to Pax8: what is owed, a post by hand.")
def usage() -> None:
    """Usage reporting to Pax8's Usage API (USAGE_REPORTING; see docs/usage.md).

    \b
    Examples:
      fulfill usage status                       # runs, what is owed, latest posts
      fulfill usage status --subscription SUB    # every post of SUB this period
      fulfill usage post SUB --period 2026-03    # post SUB's March totals now
    """


@usage.command("status")
@click.option("--subscription", "subscription", help="Show every post of this subscription.")
@click.option("--period", help="With --subscription: which period (yyyy-MM; default: now's).")
@click.option("--simulation", is_flag=True, help="The subscription is a simulated one.")
@click.option(
    "--at", "at", help="Judge what is owed as of this time (ISO 8601 UTC), e.g. the cutoff."
)
@click.option("--limit", default=20, show_default=True, help="How many latest posts to show.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def status(
    subscription: str | None,
    period: str | None,
    simulation: bool,
    at: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The latest daily runs, what Pax8 does not have yet, and the latest posts.

    Owed: the previous period's closing totals (until Pax8's cutoff, 00:00 UTC on the 3rd)
    and, once the day's run is due, today's post of the current period. Exit 1 when a
    closing total is overdue (past USAGE_OVERDUE_AFTER_HOURS into the 1st).
    """
    moment = _time(at) if at else None
    context = _context(moment)
    now = context.clock.now()
    if subscription is not None:
        _history(context, _subscription(subscription), _scope(simulation), period, now, as_json)
        return
    store = context.store
    runs = [store.run(day) for day in store.days(7)]
    debts = owed(context, now)
    earlier = periods.previous(periods.period_of(now))
    deadline = periods.deadline(earlier, context.policy.overdue_after_hours)
    overdue = [o for o in debts if o.closing and now >= deadline]
    if as_json:
        echo_json(
            {
                "now": iso(now),
                "runs": [vars(r) for r in runs if r is not None],
                "owed": [o.summary() for o in debts],
                "overdue": len(overdue),
                "recent": store.recent(limit),
                "stats": store.stats(),
            }
        )
    else:
        click.echo(
            f"Usage reporting as of {iso(now)} (run from {context.policy.run_at:%H:%M} UTC)."
        )
        rows = [
            [r.day, r.state, r.jobs, r.pending, *(r.counts.get(o.value, 0) for o in JobOutcome)]
            for r in runs
            if r is not None
        ]
        headers = ["DAY", "STATE", "JOBS", "PENDING", *(o.value.upper() for o in JobOutcome)]
        click.echo(table(headers, rows) if rows else "No run yet.")
        click.echo("")
        if debts:
            click.echo(f"Owed to Pax8 ({len(debts)}):")
            click.echo(table(
                ["SCOPE", "SUBSCRIPTION", "PERIOD", "WHAT", "CUTOFF", "LAST"],
                [[o.subscription.scope, o.subscription.id, o.period,
                  "closing totals" if o.closing else "today's totals",
                  iso(periods.cutoff(o.period)),
                  f"{o.last_outcome}: {o.last_message}" if o.last_outcome else "never posted"]
                 for o in debts],
            ))  # fmt: skip
        else:
            click.echo("Nothing owed to Pax8.")
        recent = store.recent(limit)
        if recent:
            click.echo("")
            click.echo("Latest posts:")
            click.echo(table(["AT", "SCOPE", "SUBSCRIPTION", "PERIOD", "BATCH", "LINES", "STATUS"],
                             [_post_row(p) for p in recent]))  # fmt: skip
    if overdue:
        raise CommandFailed(
            f"{len(overdue)} subscription(s) overdue: Pax8 takes {earlier} until "
            f"{iso(periods.cutoff(earlier))}"
        )


def _post_row(post: dict[str, Any]) -> list[Any]:
    at = datetime.fromtimestamp(float(post.get("at") or 0)).astimezone()
    return [
        at.strftime("%Y-%m-%d %H:%M:%S"),
        post.get("scope"),
        post.get("subscriptionId"),
        post.get("period"),
        f"{post.get('batch')}/{post.get('batches')}{'' if post.get('overwrite') else ' +'}",
        len(post.get("lines") or ()),
        post.get("status"),
    ]


def _history(
    context: UsageContext,
    subscription: str,
    scope: Scope,
    period: str | None,
    now: datetime,
    as_json: bool,
) -> None:
    wanted = _period(period) if period else periods.period_of(now)
    store = context.store
    sub = store.subscription(scope, subscription)
    posts = store.posts(scope, subscription, wanted)
    state = store.period_state(scope, subscription, wanted)
    if as_json:
        echo_json(
            {
                "subscription": sub.summary() if sub else None,
                "period": wanted,
                "state": state,
                "posts": posts,
            }
        )
        return
    if sub is None:
        raise CommandFailed(f"{scope}:{subscription} is not a subscription usage is posted for")
    ended = f", ended {iso(sub.ended_at)}" if sub.ended_at else ""
    click.echo(f"{scope}:{subscription} ({sub.type or 'active'}{ended}), period {wanted}:")
    click.echo(f"  last: {safe(state.get('last_outcome', 'never posted'))} "
               f"{safe(state.get('last_message', ''))}")  # fmt: skip
    for post in posts:
        row = _post_row(post)
        status = post.get("status")
        said = "" if str(status).startswith("2") else " " + safe(str(post.get("answer", ""))[:200])
        click.echo(f"  {row[0]}  batch {row[4]}  {row[5]} lines  -> {status}{said}")
        shown = [
            f"{safe(line.get('summaryKey'))}  {safe(line.get('productId'))}  "
            f"{line.get('quantity')} {safe(line.get('unitOfMeasurement'))}"
            for line in post.get("lines") or ()
        ]
        for text, repeats in _runs(shown):
            click.echo(f"      {text}" + (f"  (x{repeats})" if repeats > 1 else ""))


def _runs(texts: list[str]) -> list[tuple[str, int]]:
    """Consecutive equal lines as (line, how many)."""
    out: list[tuple[str, int]] = []
    for text in texts:
        if out and out[-1][0] == text:
            out[-1] = (text, out[-1][1] + 1)
        else:
            out.append((text, 1))
    return out


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {text!r}") from None


def _period(text: str) -> str:
    try:
        return periods.check_period(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@usage.command("post")
@click.argument("subscription")
@click.option("--period", required=True, help="The billing period, yyyy-MM.")
@click.option(
    "--simulation", is_flag=True, help="A simulated subscription (simulation credentials)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def post(subscription: str, period: str, simulation: bool, as_json: bool) -> None:
    """Post SUBSCRIPTION's current totals for --period to Pax8 now, in this process.

    The source's lines go out as the daily run sends them (batches of 50, the shared rate
    limit, retries) and every post is recorded. Refused here, without a call, once the
    period's cutoff (00:00 UTC on the 3rd of the next month) has passed. Exit 1 when Pax8
    did not take it.
    """
    wanted = _period(period)
    sub = _subscription(subscription)
    context = _context()
    scope = _scope(simulation)
    if context.store.subscription(scope, sub) is None:
        raise CommandFailed(
            f"{scope}:{sub} is not a subscription usage is posted for (it was never "
            "provisioned through this worker)"
        )
    try:
        result = post_now(context, scope, sub, wanted, token=f"cli-{secrets.token_hex(6)}")
    except TooLate as exc:
        raise CommandFailed(f"not posted: {exc}") from None
    except ValueError as exc:
        raise CommandFailed(f"not posted: {exc}") from None
    state = context.store.period_state(scope, sub, wanted)
    if as_json:
        echo_json(
            {
                "outcome": result.outcome,
                "posts": result.posts,
                "lines": result.lines,
                "rateLimited": result.rate_limited,
                "message": state.get("last_message"),
            }
        )
    else:
        click.echo(f"{scope}:{sub} {wanted}: {result.outcome or result.note} "
                   f"({result.posts} posts, {result.lines} lines): "
                   f"{safe(state.get('last_message', ''))}")  # fmt: skip
    if result.outcome not in (JobOutcome.POSTED, JobOutcome.EMPTY):
        raise CommandFailed(f"usage of {sub} for {wanted} was not taken by Pax8")
