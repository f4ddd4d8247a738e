"""``fulfill certify``: Pax8's simulation tests for every order type, and the report for Pax8.

Thin over :mod:`fulfillment.certify`: read the options, build a Pax8 client that holds the
simulation credentials only (no credentials, no run: exit 2), find the webhook
configuration Pax8 delivers simulated orders to, run the plan with progress on stderr
(a live line on a terminal), print one row per order on stdout, write the Markdown and JSON
reports into ``--out``. Exit 0 only if every required type passed (and the failure path,
when it ran); 1 otherwise. Every value from outside passes :func:`cli.output.safe`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click
import redis

from cli.context import runtime
from cli.errors import FAILED, ConfigurationError
from cli.output import clip, echo_json, safe, table
from cli.simulate import parse_pairs
from config.version import LEDGER_SCHEMA
from fulfillment.certify.plan import ALL_TYPES, FailCase, OrderSpec, parse_types
from fulfillment.certify.report import as_dict, summary, write
from fulfillment.certify.run import (
    Certification,
    Certifier,
    NotReady,
    OrderRun,
    find_target,
    simulation_client,
)
from fulfillment.ledger import Ledger
from fulfillment.ledger.schema import NewerSchema, read_stamp
from fulfillment.runtime.clients import RedisUse, redis_client

DEFAULT_TIMEOUT = 120.0


class TerminalProgress:
    """Each order's progress on stderr: a line rewritten in place on a terminal, one line
    per change of what it waits for elsewhere."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._waiting_for = ""

    def _line(self, text: str, final: bool) -> None:
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final or text:
            self.stream.write(text + "\n")
        self.stream.flush()

    def begin(self, spec: OrderSpec) -> None:
        """The order is posted."""
        self._waiting_for = ""
        if self.live:
            self._line(f"  {spec.label:<28} posting the order event", False)

    def waiting(self, spec: OrderSpec, what: str, elapsed: float) -> None:
        """Still waiting."""
        if self.live:
            self._line(f"  {spec.label:<28} waiting for {what} ({elapsed:.0f}s)", False)
        elif what != self._waiting_for:
            self._line(f"  {spec.label:<28} waiting for {what}", True)
        self._waiting_for = what

    def end(self, run: OrderRun) -> None:
        """The verdict, with what took how long."""
        times = ", ".join(f"{key} {value:.1f}s" for key, value in run.seconds.items())
        verdict = "passed" if run.passed else "FAILED"
        extra = f"  {safe(clip(run.problem, 120))}" if run.problem else ""
        self._line(
            f"  {safe(run.label):<28} {verdict}  {safe(run.result or '-')}"
            + (f"  ({times})" if times else "")
            + extra,
            True,
        )


def _ledger(enabled: bool) -> tuple[Ledger | None, str]:
    """The deployment's ledger when it answers (timings of the vendor's outcome), or None
    and why not."""
    if not enabled:
        return None, "not read (--no-ledger)"
    settings = runtime().settings
    client = redis_client(settings, RedisUse.CLI)
    try:
        client.ping()
    except redis.RedisError as exc:  # unreachable, refused, or not a Redis we may read
        client.close()
        return None, f"not read (REDIS_URL does not answer: {type(exc).__name__})"
    ledger = Ledger(client)
    stamp = read_stamp(ledger)
    if stamp.version is not None and stamp.version > LEDGER_SCHEMA:  # read nothing of it
        client.close()
        return None, f"not read ({NewerSchema(stamp)})"
    return ledger, "read"


def _rows(runs: list[OrderRun]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for run in runs:
        verdict = "passed" if run.passed else ("not run" if not run.ran else "FAILED")
        said = run.problem or run.message or ", ".join(run.external_ids.values())
        rows.append((run.label, verdict, run.request_id or "-", run.result or "-", clip(said, 90)))
    return rows


@click.command("certify", short_help="Run Pax8's simulation tests; write the report for Pax8.")
@click.option(
    "--types",
    "types_text",
    default="all",
    show_default=True,
    metavar="TYPE,...",
    help=f"The order types that apply to your product ({', '.join(t.value for t in ALL_TYPES)}).",
)
@click.option(
    "--fail-case",
    "fail_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="How to make your vendor refuse an order (repeatable): provisionRequest fields, "
    "details.KEY for checkout details, type=TYPE (NetNew by default).",
)
@click.option(
    "--request",
    "request_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provisionRequest field every order carries (repeatable), e.g. productId=...",
)
@click.option(
    "--details",
    "detail_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A checkout detail every order carries (repeatable), e.g. adminEmail=it@acme.test.",
)
@click.option("--new-product-id", metavar="ID", help="The product ChangeProduct moves to.")
@click.option(
    "--timeout",
    type=click.FloatRange(1, 3600),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long each order may take, from its order event to its result at Pax8.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write pax8-certification.md and .json into this directory.",
)
@click.option(
    "--ledger/--no-ledger",
    default=True,
    show_default=True,
    help="Read the deployment's ledger (REDIS_URL) for the vendor's timings when it answers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report on stdout.")
def certify(
    types_text: str,
    fail_items: tuple[str, ...],
    request_items: tuple[str, ...],
    detail_items: tuple[str, ...],
    new_product_id: str | None,
    timeout: float,
    out: Path | None,
    ledger: bool,
    as_json: bool,
) -> None:
    """Run Pax8's simulation tests through this deployment and write the report for Pax8.

    Pax8 asks a vendor to pass a simulation test for every order type that applies before
    going live. This posts simulated order events (POST /provision-simulations/order-events,
    simulation credentials only: it never touches production data and refuses to run
    without PAX8_SIMULATION_CLIENT_ID/_SECRET) in realistic sequences on one subscription
    (NetNew, Update, ChangeProduct, Renewal, Deprovision; TrialCreate, TrialConvert;
    PartnerEnrollment), and follows each one through the receiver Pax8 delivers to (the
    newest simulation webhook configuration's URL: the deployment may be on another host),
    the workers and the vendor adapter, until its result is recorded at Pax8, read back
    through the API. The failure path is one more order the vendor must refuse with one
    Fail a partner can act on: --fail-case says how to provoke it (the example vendor: a
    domain already in use, by default); without it, it is skipped with a note.

    Exit 0 only if every type asked for passed, and the failure path when it ran; 1
    otherwise; 2 without simulation credentials or a simulation webhook configuration.

    \b
    Examples:
      fulfill certify --out certification
      fulfill certify --types NetNew,Update,Deprovision --fail-case companyDomain=taken.test
      fulfill certify --request productId=9f1c... --details adminEmail=it@acme.test --out r
    """
    try:
        types = parse_types(types_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--types") from None
    pairs = parse_pairs(fail_items, "--fail-case")
    try:
        fail_case = FailCase.parse(pairs) if pairs else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-case") from None
    request = parse_pairs(request_items, "--request")
    details = parse_pairs(detail_items, "--details")
    settings = runtime().settings
    if fail_case is None and settings.simulation_adapter == "example":
        fail_case = FailCase.example()
    try:
        pax8 = simulation_client(settings)
    except NotReady as exc:
        raise ConfigurationError(str(exc)) from None
    the_ledger, ledger_note = _ledger(ledger)
    try:
        try:
            target = find_target(pax8, settings)
        except NotReady as exc:
            raise ConfigurationError(str(exc)) from None
        err = sys.stderr
        _header(err, target.webhook_url, target.webhook_id, ledger_note)
        certifier = Certifier(
            pax8,
            the_ledger,
            timeout=timeout,
            progress=TerminalProgress(err),
            request=request,
            details=details,
            new_product_id=new_product_id,
        )
        cert = certifier.run(target, types, fail_case)
    finally:
        pax8.close()
        if the_ledger is not None:
            the_ledger.redis.close()
    _finish(cert, out, as_json)


def _header(err: IO[str], url: str, webhook_id: str, ledger_note: str) -> None:
    err.write(
        "Certification in Pax8's simulation environment (simulation credentials only: no "
        "production data is touched).\n"
        f"Pax8 delivers simulated orders to {safe(url)} (configuration {safe(webhook_id)}); "
        f"the ledger: {safe(ledger_note)}.\n"
    )
    err.flush()


def _finish(cert: Certification, out: Path | None, as_json: bool) -> None:
    runs = [*cert.orders, *([cert.failure] if cert.failure else [])]
    if as_json:
        echo_json(as_dict(cert))
    else:
        click.echo(table(("order", "verdict", "request", "result", "message"), _rows(runs)))
        click.echo(f"\nFailure path: {safe(cert.failure_note)}.")
    if out is not None:
        md_path, json_path = write(cert, out)
        click.echo(f"Report: {safe(md_path)} and {safe(json_path)}", err=as_json)
    click.echo(f"{'PASSED' if cert.passed else 'FAILED'}: {safe(summary(cert))}.", err=as_json)
    if not cert.passed:
        raise click.exceptions.Exit(FAILED)
