"""``fulfill migrate``: bring the ledger's data to this release's schema, or say what it is."""

from __future__ import annotations

import time

import click

from cli.context import runtime
from cli.errors import FAILED
from config.version import LEDGER_SCHEMA, __version__
from fulfillment.ledger.migrations import MIGRATIONS, migrate, pending
from fulfillment.ledger.schema import NewerSchema, Stamp, read_stamp


def _describe(stamp: Stamp) -> str:
    if stamp.version is None:
        return "no schema stamp: data of 0.1.0" if stamp.data else "empty"
    text = stamp.describe()
    if stamp.at:
        text += time.strftime(" at %Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp.at))
    return text + (f" (from {stamp.before})" if stamp.before else "")


@click.command("migrate", short_help="Bring the ledger's data to this release's schema.")
@click.option(
    "--check",
    is_flag=True,
    help="Only say what the data is and what a migration would do (exit 1 if anything).",
)
def migrate_command(check: bool) -> None:
    """Bring the ledger's data in Redis to this release's schema (docs/upgrading.md).

    Stamps an empty Redis or 0.1.0's data (which carries no stamp), and runs every pending
    migration, offline ones included: stop every process of the older release before one
    of those. One runner at a time (a lock; others wait), resumed where an interrupted run
    stopped, and nothing to do the second time. Processes run the online migrations
    themselves as they start (LEDGER_MIGRATE_AT_START).

    Exit 0 once the data is at this release's schema; with --check, 0 when nothing is to
    do and 1 otherwise; 4 when the data is of a newer schema (nothing is touched).

    \b
    Examples:
      fulfill migrate --check
      fulfill migrate
    """
    ledger = runtime().ledger(check_schema=False)
    if check:
        stamp = read_stamp(ledger)
        click.echo(f"ledger data   {_describe(stamp)}")
        click.echo(f"this release  {__version__}, ledger schema {LEDGER_SCHEMA}")
        if stamp.version is not None and stamp.version > LEDGER_SCHEMA:
            raise NewerSchema(stamp)
        todo = pending(stamp, MIGRATIONS, LEDGER_SCHEMA)
        if stamp.version == LEDGER_SCHEMA:
            click.echo("to do         nothing")
            return
        if not todo:
            click.echo(f"to do         stamp schema {LEDGER_SCHEMA} (nothing to rewrite)")
        for migration in todo:
            kind = "online" if migration.online else "offline: stop every older process first"
            click.echo(f"to do         schema {migration.to}: {migration.summary} ({kind})")
        raise click.exceptions.Exit(FAILED)
    outcome = migrate(ledger, offline=True)
    click.echo(outcome.line())
