"""``fulfill check-vendor [URL]``: does a vendor's endpoint keep the ``http`` adapter's contract?

Runs :class:`vendors.conformance.Checker` against a staging endpoint and prints one row per
rule: pass or FAIL, and what was seen (the vendor's own words pass through
:func:`cli.output.table`, which escapes control characters). Without a URL it checks every
``http`` backend of the routes file (``VENDOR_ROUTES``; ``--route NAME`` for one route's),
each with its own token and timeout, a table per backend (an endpoint two backends share is
checked once). Exit 0 only when every rule passes, 1 when one fails, 2 for a bad URL, option
or routes file, 3 when an endpoint never answers. The token is read from ``--token`` or
``VENDOR_HTTP_TOKEN`` (a routes file's backends: their ``token_env``) and never printed.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from cli.context import runtime
from cli.errors import FAILED, UNREACHABLE, ConfigurationError, Unreachable
from cli.output import table
from config.routes import Routes, RoutesError
from config.scrub import mask_url
from vendors.conformance import Checker, NoAnswer, all_passed


@dataclass(frozen=True)
class Target:
    """One endpoint to check, and how the worker calls it."""

    label: str
    url: str
    token: str | None
    timeout: float


@click.command("check-vendor")
@click.argument("url", required=False)
@click.option(
    "--route",
    "route",
    metavar="NAME",
    help="Without URL: only the http backends of this route of the routes file.",
)
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
def check_vendor(url: str | None, route: str | None, token: str | None, timeout: float) -> None:
    """Check a vendor's provisioning endpoint against the http adapter's contract
    (vendors/http-api.yaml): every order type answered, the same key twice provisions once,
    two concurrent calls with one key do not both provision, a key reused with another body
    is refused, refusals carry a message a partner can act on, answers come in time.

    Without URL: every http backend of the routes file (VENDOR_ROUTES), production and
    simulation, each with the token its token_env names; --route NAME checks one route's.

    Orders are simulated (isSimulation: true) with ids made up for the run: point it at a
    staging endpoint. It sends about fifteen orders per endpoint.

    \b
    Examples:
      fulfill check-vendor https://staging.vendor.example/pax8/orders --token "$TOKEN"
      fulfill check-vendor                  # every http backend of VENDOR_ROUTES
      fulfill check-vendor --route archive  # one route's
    """
    if url is not None:
        if route is not None:
            raise ConfigurationError("--route: checks a route of the routes file: give no URL")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError("URL: must be an http:// or https:// URL")
        targets = [Target(mask_url(url), url.rstrip("/"), token or None, timeout)]
    else:
        targets = route_targets(runtime().settings.routes, route)
    failed, unreachable = False, False
    for target in targets:
        if len(targets) > 1 or url is None:
            click.echo(f"\n{target.label}")
        checker = Checker(target.url, token=target.token, timeout=target.timeout)
        try:
            findings = checker.run()
        except NoAnswer as exc:
            if len(targets) == 1:
                raise Unreachable(
                    f"the vendor at {mask_url(target.url)} does not answer: {exc}"
                ) from None
            click.echo(f"  does not answer: {exc}")
            unreachable = True
            continue
        finally:
            checker.close()
        rows = [(f.rule, "pass" if f.passed else "FAIL", f.seen) for f in findings]
        click.echo(table(("rule", "result", "seen"), rows))
        passed = sum(f.passed for f in findings)
        click.echo(f"\n{passed} of {len(findings)} rules pass ({len(checker.exchanges)} calls).")
        failed = failed or not all_passed(findings)
    if unreachable:
        raise click.exceptions.Exit(UNREACHABLE)
    if failed:
        raise click.exceptions.Exit(FAILED)


def route_targets(routes: Routes, only: str | None) -> list[Target]:
    """The http backends of the routes file (of route ``only``), each endpoint once;
    :class:`ConfigurationError` when there is no routes file, no such route, no http backend
    to check, or a token variable is not set."""
    if not routes.from_file:
        raise ConfigurationError(
            "URL: give the endpoint's URL, or set VENDOR_ROUTES to check every http backend "
            "of a routes file"
        )
    chosen = [r for r in routes if only is None or r.name == only]
    if not chosen:
        names = ", ".join(routes.names)
        raise ConfigurationError(f"--route: {only} is not a route of {routes.source} ({names})")
    try:
        Routes({r.name: r for r in chosen}, None, routes.source).check_tokens()
    except RoutesError as exc:
        raise ConfigurationError(f"VENDOR_ROUTES: {exc}") from None
    targets: dict[tuple[str, str | None], Target] = {}
    for route in chosen:
        for backend in route.backends:
            if backend.adapter != "http" or backend.url is None:
                continue
            token = backend.token.get_secret_value() if backend.token else None
            label = f"route {backend.label}: {mask_url(backend.url)}"
            targets.setdefault(
                (backend.url, token),
                Target(label, backend.url, token, backend.timeout_seconds or 30.0),
            )
    if not targets:
        which = f"route {only}" if only else str(routes.source)
        raise ConfigurationError(f"--route: {which} has no http backend to check")
    return list(targets.values())
