"""``fulfill check-vendor URL``: does a vendor's endpoint keep the ``http`` adapter's contract?

Runs :class:`vendors.conformance.Checker` against a staging endpoint and prints one row per
rule: pass or FAIL, and what was seen (the vendor's own words pass through
:func:`cli.output.table`, which escapes control characters). Exit 0 only when every rule
passes, 1 when one fails, 2 for a bad URL or option, 3 when the endpoint never answers. The
token is read from ``--token`` or ``VENDOR_HTTP_TOKEN`` and never printed.
"""

from __future__ import annotations

import click

from cli.errors import FAILED, ConfigurationError, Unreachable
from cli.output import table
from config.scrub import mask_url
from vendors.conformance import Checker, NoAnswer, all_passed


@click.command("check-vendor")
@click.argument("url")
@click.option(
    "--token",
    envvar="VENDOR_HTTP_TOKEN",
    help="Bearer token the endpoint expects (default: $VENDOR_HTTP_TOKEN).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="VENDOR_HTTP_TIMEOUT_SECONDS",
    default=30.0,
    show_default=True,
    help="Seconds a whole call may take, as the worker's (default: $VENDOR_HTTP_TIMEOUT_SECONDS).",
)
def check_vendor(url: str, token: str | None, timeout: float) -> None:
    """Check a vendor's provisioning endpoint against the http adapter's contract
    (vendors/http-api.yaml): every order type answered, the same key twice provisions once,
    two concurrent calls with one key do not both provision, a key reused with another body
    is refused, refusals carry a message a partner can act on, answers come in time.

    Orders are simulated (isSimulation: true) with ids made up for the run: point it at a
    staging endpoint. It sends about fifteen orders.

    \b
    Example:
      fulfill check-vendor https://staging.vendor.example/pax8/orders --token "$TOKEN"
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError("URL: must be an http:// or https:// URL")
    checker = Checker(url.rstrip("/"), token=token or None, timeout=timeout)
    try:
        findings = checker.run()
    except NoAnswer as exc:
        raise Unreachable(f"the vendor at {mask_url(url)} does not answer: {exc}") from None
    finally:
        checker.close()
    rows = [(f.rule, "pass" if f.passed else "FAIL", f.seen) for f in findings]
    click.echo(table(("rule", "result", "seen"), rows))
    passed = sum(f.passed for f in findings)
    click.echo(f"\n{passed} of {len(findings)} rules pass ({len(checker.exchanges)} calls).")
    if not all_passed(findings):
        raise click.exceptions.Exit(FAILED)
