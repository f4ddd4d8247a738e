"""``fulfill simulate``: post simulated orders to Pax8 (or the sandbox) and follow them.

Pax8's ``POST /provision-simulations/order-events`` (simulation credentials) makes an
order from a partial ProvisionTestingOrderEvent, fills in the rest and delivers its
webhook to the newest simulation webhook configuration before it answers. The command
then follows each order in the ledger until its result is reported.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from cli.context import runtime
from cli.errors import CommandFailed
from cli.follow import Follower
from cli.output import echo_json
from pax8.client import Pax8Client
from pax8.models import RequestType

REQUEST_TYPES = [kind.value for kind in RequestType]
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_NEEDS_DOMAIN = ("NetNew", "TrialCreate")


def parse_value(raw: str) -> Any:
    """``7`` → 7, ``true``/``false`` → bool, anything else stays text."""
    if _INT.fullmatch(raw):
        return int(raw)
    if raw in ("true", "false"):
        return raw == "true"
    return raw


def parse_pairs(items: Sequence[str], option: str) -> dict[str, Any]:
    """``key=value`` (ints and booleans parsed) and ``key:=JSON`` pairs into a dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or key == ":":
            raise click.BadParameter(f"{item!r} is not key=value", param_hint=option)
        if key.endswith(":"):
            try:
                out[key[:-1]] = json.loads(raw)
            except ValueError as exc:
                raise click.BadParameter(
                    f"{item!r}: the value after := must be JSON ({exc})", param_hint=option
                ) from None
        else:
            out[key] = parse_value(raw)
    return out


def order_event(
    request_type: str, request: dict[str, Any], details: dict[str, Any]
) -> dict[str, Any]:
    """The partial order event to post; a fresh company domain unless one is given."""
    fields = dict(request)
    fields["type"] = request_type
    if request_type in _NEEDS_DOMAIN and not (
        fields.get("companyDomain") or fields.get("compayDomain")
    ):
        # Pax8 would default every company to example.com, and a vendor that keeps one
        # company per domain (the example vendor does) would refuse all but the first.
        fields["companyDomain"] = f"sim-{uuid.uuid4().hex[:10]}.example.com"
    body: dict[str, Any] = {"provisionRequest": fields}
    if details:
        body["provisionDetail"] = {"details": details}
    return body


@dataclass(frozen=True)
class Posted:
    """One order event Pax8 accepted, and what became of its webhook."""

    number: int
    request_id: str
    request_type: str
    attempt_id: str
    attempt_status: str
    error: str
    company_domain: str

    @property
    def label(self) -> str:
        """``#2 NetNew 5d0c6a4e``."""
        return f"#{self.number} {self.request_type} {self.request_id[:8]}"

    @property
    def delivered(self) -> bool:
        """Whether the receiver accepted the webhook (the attempt is Acknowledged)."""
        return self.attempt_status == "Acknowledged"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "requestId": self.request_id,
            "type": self.request_type,
            "attemptId": self.attempt_id,
            "attemptStatus": self.attempt_status,
            "attemptError": self.error or None,
            "companyDomain": self.company_domain or None,
        }


def post_order(pax8: Pax8Client, number: int, body: dict[str, Any]) -> Posted:
    """Post one order event; Pax8 answers once its webhook was delivered (or refused)."""
    event = pax8.create_order_event(body)
    request = event.provision_request
    attempt = event.provision_attempt
    if request is None:
        raise CommandFailed("Pax8 answered the order event without a provisionRequest")
    return Posted(
        number=number,
        request_id=request.id,
        request_type=str(request.type or body["provisionRequest"]["type"]),
        attempt_id=attempt.id if attempt else "",
        attempt_status=(attempt.status or "") if attempt else "",
        error=(attempt.error_detail or "") if attempt else "",
        company_domain=request.company_domain or "",
    )


@click.command("simulate", short_help="Post simulated orders and follow them to their results.")
@click.option(
    "--type",
    "request_type",
    type=click.Choice(REQUEST_TYPES),
    default="NetNew",
    show_default=True,
    help="The request type.",
)
@click.option(
    "--request",
    "request_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provisionRequest field (repeatable), e.g. companyDomain=acme.com quantity=5.",
)
@click.option(
    "--details",
    "detail_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provisionDetail.details field (repeatable), e.g. adminEmail=it@acme.com.",
)
@click.option(
    "--product",
    "products",
    multiple=True,
    metavar="ID",
    help="A productId (repeatable): the orders take them in turn, so with a routes file "
    "(VENDOR_ROUTES) they reach several backends.",
)
@click.option(
    "--count",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="How many orders to post.",
)
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Follow each order in the ledger (needs REDIS_URL) until its result.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to follow before giving up.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def simulate(
    request_type: str,
    request_items: tuple[str, ...],
    detail_items: tuple[str, ...],
    products: tuple[str, ...],
    count: int,
    follow: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Post simulated orders to Pax8 (or the sandbox) and follow them to their results.

    Uses the simulation credentials (PAX8_SIMULATION_CLIENT_ID/_SECRET); Pax8 fills in
    every field left out and delivers the webhook to the newest simulation webhook
    configuration. KEY=VALUE values that look like integers or true/false are sent as
    such; KEY:=JSON sends raw JSON. A NetNew or TrialCreate without a companyDomain gets
    a fresh sim-XXXX.example.com one.

    With --follow (the default) each order is followed in the ledger, its state changes
    printed, until it is reported (Success with the vendor's ids, or Fail with its
    message) or dead. Exit 1 if an order's webhook was refused, or an order did not
    reach a result within --timeout.

    \b
    Examples:
      fulfill simulate
      fulfill simulate --type NetNew --request companyDomain=acme.com --request quantity=5 \\
          --details adminEmail=it@acme.com
      fulfill simulate --type Update --request subscriptionId=7f6e... --request quantity=9
      fulfill simulate --count 20 --no-follow
      fulfill simulate --count 6 --product 1f0e... --product 9a2c...   # two backends
    """
    request = parse_pairs(request_items, "--request")
    details = parse_pairs(detail_items, "--details")
    if products and "productId" in request:
        raise click.BadParameter("give --product or --request productId=..., not both")

    def body_of(number: int) -> dict[str, Any]:
        fields = dict(request)
        if products:
            fields["productId"] = products[(number - 1) % len(products)]
        return order_event(request_type, fields, details)

    rt = runtime()
    ledger = rt.ledger() if follow else None  # Redis first: nothing is posted if it is down
    pax8 = rt.pax8(simulation=True)
    posted: list[Posted] = []
    if count == 1:
        posted.append(post_order(pax8, 1, body_of(1)))
    else:
        with click.progressbar(
            range(1, count + 1), label=f"Posting {count} {request_type} orders", file=sys.stderr
        ) as numbers:
            for number in numbers:
                posted.append(post_order(pax8, number, body_of(number)))
    if not as_json:
        _print_posted(posted)
    if ledger is None:
        if as_json:
            echo_json([p.as_dict() for p in posted])
        return
    follower = Follower(
        ledger, echo=None if as_json else click.echo, backends=rt.settings.routes.from_file
    )
    for p in posted:
        if p.delivered:
            follower.add(p.request_id, p.label)
    if not as_json and follower.orders:
        click.echo("Following in the ledger:")
    complete = follower.wait(timeout)
    if as_json:
        by_id = {r["requestId"]: r for r in follower.results()}
        echo_json([p.as_dict() | {"result": by_id.get(p.request_id)} for p in posted])
    _verdict(posted, follower, complete, timeout, quiet=as_json)


def _print_posted(posted: list[Posted]) -> None:
    click.echo(f"Posted {len(posted)} simulated order(s):")
    for p in posted:
        domain = f"  companyDomain {p.company_domain}" if p.company_domain else ""
        click.echo(f"  {p.label}  request {p.request_id}  webhook {p.attempt_status}{domain}")
        if not p.delivered:
            click.echo(f"    the receiver did not accept the webhook: {p.error or 'no detail'}")


def _verdict(
    posted: list[Posted], follower: Follower, complete: bool, timeout: float, quiet: bool
) -> None:
    problems = []
    refused = [p for p in posted if not p.delivered]
    if refused:
        problems.append(f"{len(refused)} webhook(s) not accepted by the receiver")
    dead = [o.label for o in follower.orders.values() if o.outcome == "dead"]
    if dead:
        problems.append(f"dead (nothing reported): {', '.join(dead)}")
    if not complete:
        labels = ", ".join(
            f"{o.label} ({o.record.state if o.record else 'not in the ledger'})"
            for o in follower.pending
        )
        problems.append(f"no result within {timeout:g}s for {labels}")
    if problems:
        raise CommandFailed("; ".join(problems))
    if not quiet:
        click.echo(f"All {len(posted)} order(s) reached a result.")
