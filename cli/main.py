"""``fulfill``: the operator's command line (the console script points at :func:`main`).

The group builds a :class:`~cli.context.Runtime` for the subcommand, closes it at the
end, and turns the errors of the libraries underneath into the documented exit codes
(:mod:`cli.errors`), so every command fails the same way for the same cause.
"""

from __future__ import annotations

from typing import Any

import click

from cli.certify import certify
from cli.check_vendor import check_vendor
from cli.console_user import console_user
from cli.context import Runtime
from cli.dev import dev
from cli.doctor import doctor
from cli.errors import EXIT_CODES_HELP, translate
from cli.migrate import migrate_command
from cli.reconcile import reconcile_command
from cli.replay import replay_command
from cli.sandbox_command import sandbox
from cli.simulate import simulate
from cli.status import status
from cli.usage import usage
from cli.webhooks import webhooks
from config.version import LEDGER_SCHEMA, MESSAGE_FORMAT, __version__

_PASS_THROUGH = (click.ClickException, click.exceptions.Exit, click.Abort)


class FulfillGroup(click.Group):
    """A group that maps library errors of any subcommand to exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; translate Redis, Pax8 and settings errors."""
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            found = ctx.find_object(Runtime)
            mapped = translate(exc, found.loaded if found else None)
            if mapped is None:
                raise
            raise mapped from exc


@click.group(
    cls=FulfillGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__,
    "--version",
    prog_name="fulfill",
    message=f"%(prog)s (pax8-fulfillment) %(version)s, ledger schema {LEDGER_SCHEMA}, "
    f"message format {MESSAGE_FORMAT}",
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Operate the Pax8 fulfillment worker: inspect and replay orders, reconcile, configure
    Pax8 webhooks, simulate orders, and run the whole stack locally.

    Settings come from the environment (and a .env file), as for the worker: REDIS_URL,
    PAX8_API_URL, PAX8_TOKEN_URL, PAX8_CLIENT_ID/_SECRET, PAX8_SIMULATION_CLIENT_ID/_SECRET
    and the rest (see docs/configuration.md).

    \b
    Examples:
      fulfill dev                      # the whole stack locally, with a demo
      fulfill status                   # counts by state and recent orders
      fulfill simulate --type NetNew   # a simulated order, followed to its result
      fulfill replay REQUEST_ID        # send an order through again
      fulfill reconcile                # find and redo what was left undone
      fulfill check-vendor URL         # does a vendor endpoint keep the http contract?
      fulfill usage status             # usage owed to Pax8, and what it was told
      fulfill doctor                   # is every wire of this deployment right?
      fulfill certify --out report     # Pax8's simulation tests, a report to send Pax8
      fulfill migrate                  # bring the ledger's data to this release's schema
    """
    runtime = ctx.ensure_object(Runtime)
    ctx.call_on_close(runtime.close)


main.add_command(status)
main.add_command(replay_command)
main.add_command(reconcile_command)
main.add_command(webhooks)
main.add_command(simulate)
main.add_command(sandbox)
main.add_command(dev)
main.add_command(check_vendor)
main.add_command(console_user)
main.add_command(usage)
main.add_command(doctor)
main.add_command(certify)
main.add_command(migrate_command)


if __name__ == "__main__":
    main(prog_name="fulfill")
