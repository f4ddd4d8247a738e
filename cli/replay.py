"""``fulfill replay``: send an order through the worker again (the rules:
:mod:`fulfillment.workflow.replay`, which the console's Replay button follows too)."""

from __future__ import annotations

import click

from cli.context import runtime
from cli.errors import CommandFailed
from cli.orders import scope_option, which
from cli.output import echo_json
from fulfillment.workflow.replay import ReplayRefused, replay


@click.command("replay", short_help="Send an order through the worker again.")
@click.argument("request_id")
@click.option(
    "--force",
    is_flag=True,
    help="Also replay an order reported Success (the vendor runs it again).",
)
@scope_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def replay_command(request_id: str, force: bool, scope: str | None, as_json: bool) -> None:
    """Send an order through the worker again, the safe way for its state.

    \b
    dead         enqueued again (same Idempotency-Key)
    failed       a new try with a new Idempotency-Key
    provisioned  only the report to Pax8 is enqueued
    reported     Fail: a new Pax8 attempt is created, then a new try;
                 Success: refused unless --force
    in flight    (received, queued, provisioning) refused

    Exit 1 if the order is unknown or the replay is refused.

    \b
    Examples:
      fulfill replay 5d0c6a4e-8f5b-4c1e-9a57-0c7f2b8f1d2a
      fulfill replay 5d0c6a4e-8f5b-4c1e-9a57-0c7f2b8f1d2a --force
    """
    rt = runtime()
    ledger = rt.ledger()
    try:
        done = replay(ledger, rt.publisher(), rt.pax8, which(request_id, scope), force)
    except ReplayRefused as exc:
        raise CommandFailed(str(exc)) from None
    if as_json:
        echo_json(done.__dict__)
    else:
        click.echo(done.message)
        click.echo(f"Follow it with: fulfill status {request_id}")
