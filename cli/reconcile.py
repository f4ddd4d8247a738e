"""``fulfill reconcile``: one reconciliation run now, in this process."""

from __future__ import annotations

import click

from cli.context import runtime
from cli.errors import CommandFailed
from cli.output import echo_json
from fulfillment.workflow.reconcile import ReconcileSummary, reconcile

_LINES = (
    ("seen", "unfulfilled requests listed by Pax8"),
    ("in_flight", "already in flight in the ledger"),
    ("enqueued", "enqueued (unknown to the ledger, or a new attempt)"),
    ("attempts_created", "Pax8 attempts created for them"),
    ("rereported", "finished orders whose report was enqueued again"),
    ("reopened", "reported orders whose refused result is owed again (Pax8 acknowledged it)"),
    ("requeued", "stuck orders enqueued again"),
    ("dead", "dead in the ledger (see fulfill status --state dead)"),
    ("unchanged", "unchanged"),
    ("pages", "pages read"),
    ("api_calls", "Pax8 API calls"),
)


def print_summary(summary: ReconcileSummary) -> None:
    """The run's figures, one per line, then its errors."""
    if not summary.ran:
        click.echo(f"Reconciliation did not run: {summary.skipped_reason}.")
        return
    width = max(len(str(getattr(summary, name))) for name, _ in _LINES)
    for name, text in _LINES:
        click.echo(f"{str(getattr(summary, name)).rjust(width)}  {text}")
    click.echo(f"Done in {summary.seconds:.2f}s.")
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)


@click.command("reconcile", short_help="Reconcile with Pax8 now (lost webhooks, stuck orders).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def reconcile_command(as_json: bool) -> None:
    """Reconcile now: find what lost webhooks, crashes or outages left undone.

    Pages Pax8's unfulfilled requests (production and simulation, for each configured
    credential set), enqueues what the ledger does not have in flight, re-reports what
    was provisioned but not reported and requeues stuck orders: the same run celery beat
    makes every RECONCILE_INTERVAL_SECONDS, here in this process and at once.

    Exit 1 if the run reported errors; 0 otherwise, also when another run held the lock
    (it says so).

    \b
    Examples:
      fulfill reconcile
      fulfill reconcile --json
    """
    rt = runtime()
    ledger = rt.ledger()
    pax8 = rt.pax8()
    for simulation in (False, True):
        if pax8.has_credentials(simulation):
            # A token up front: an unreachable Pax8 is exit 3, not a list of errors.
            pax8.tokens(simulation).token()
    policy = rt.services.policies.reconcile
    summary = reconcile(ledger, pax8, rt.publisher(), policy, force=True, routes=rt.settings.routes)
    if as_json:
        echo_json(summary.as_dict())
    else:
        print_summary(summary)
    if summary.errors:
        raise CommandFailed(f"reconciliation reported {len(summary.errors)} error(s)")
