"""``fulfill status``: what the ledger knows, for one order or for all of them.

The views are :mod:`fulfillment.views.orders` (the console shows the same ones).
"""

from __future__ import annotations

import time
from typing import Any

import click

from cli.context import runtime
from cli.errors import CommandFailed
from cli.orders import scope_option, which
from cli.output import age, clip, echo_json, external_ids, safe, table, when
from fulfillment.ledger import STATES, AmbiguousId
from fulfillment.ledger.states import State
from fulfillment.views.orders import describe, holder_line, overview


def _print_one(view: dict[str, Any]) -> None:
    record = view["record"]
    error = record["error"]
    rows: list[tuple[str, Any]] = [
        ("request", record["id"]),
        ("type", record["type"] + ("  (simulation)" if record["simulation"] else "")),
        ("source", record["source"]),
        ("backend", _backend(record)),
        ("previous backend", record.get("previousRoute")),
        ("state", record["state"]),
        ("outcome", record["outcome"] or "-"),
        ("external ids", external_ids(record["externalIds"]) or "-"),
        ("message", record["resultMessage"] or "-"),
        # A Fail's message is also its error; show the error only when it says more.
        ("error", error if error and error != record["resultMessage"] else None),
        ("detail", record["detailId"]),
        ("attempt", record["attemptId"] or "-"),
        ("retries", record["retries"]),
        ("generation", record["generation"]),
        ("created", when(record["createdAt"])),
        ("updated", f"{when(record['updatedAt'])} ({age(record['updatedAt'])} ago)"),
    ]
    rows += _held(view["holding"])
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        if value is not None:
            click.echo(f"{name.ljust(width)}  {safe(value)}")
    click.echo("\nAttempts (one result is owed per attempt):")
    attempts = [
        (a["id"], a["detailId"], a["status"], when(a["at"]), a["resultId"] or "-")
        for a in view["attempts"]
    ]
    click.echo(_indent(table(("attempt", "detail", "status", "at", "result"), attempts)))
    click.echo("\nHistory:")
    history = [
        (
            when(entry.get("at", 0)),
            entry.get("state", ""),
            entry.get("event", ""),
            clip(str(entry.get("note") or ""), 80),
        )
        for entry in view["history"]
    ]
    click.echo(_indent(table(("at", "state", "event", "note"), history)))


def _held(holding: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The rows saying who holds an order in flight (none once it is not in flight)."""
    if holding is None:
        return []
    now = holding["now"]
    rows: list[tuple[str, Any]] = []
    claim = holding["claim"]
    if claim is not None:
        since = f"since {when(claim['since'])} ({age(claim['since'], now)} ago)"
        rows.append(
            ("held by", f"{holder_line(claim['worker'], claim['heartbeat'], now)}; {since}")
        )
    for message in holding["messages"]:
        since = f"since {when(message['since'])}"
        taken = "its task message, taken by" if claim is None else "its message, held by"
        line = holder_line(message["worker"], message["heartbeat"], now)
        rows.append(("message", f"{taken} {line}; {since}"))
    if claim is None and not holding["messages"]:
        rows.append(("message", "waiting in its queue for a worker"))
    if holding["callUntil"] and holding["callUntil"] > now:
        rows.append(("call until", f"{when(holding['callUntil'])}: an earlier vendor call may "
                                   "still run; nobody calls again before"))  # fmt: skip
    return rows


def _print_overview(view: dict[str, Any], state: str | None) -> None:
    counts = view["counts"]
    click.echo("  ".join(f"{name} {counts[name]}" for name in STATES))
    recent = view["recent"]
    if not recent:
        click.echo(f"\nNo orders{' in state ' + state if state else ''} in the ledger.")
        return
    now = time.time()
    rows = [
        (
            r["id"],
            r["type"],
            "sim" if r["simulation"] else "",
            _backend(r),
            r["state"],
            r["outcome"] or "",
            age(r["updatedAt"], now),
            clip(r["error"] or "", 60),
        )
        for r in recent
    ]
    click.echo("")
    click.echo(table(("id", "type", "sim", "backend", "state", "outcome", "age", "error"), rows))


def _backend(record: dict[str, Any]) -> str:
    """The route an order was recorded with (``-``: none takes it; an order recorded before
    routes has none until a worker claims it)."""
    return str(record.get("route") or "(not yet)")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@click.command(short_help="Show the orders in the ledger, or one in full.")
@click.argument("request_id", required=False)
@click.option(
    "--state", type=click.Choice([s.value for s in State]), help="Only orders in this state."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many recent orders to list.",
)
@scope_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(
    request_id: str | None, state: str | None, limit: int, scope: str | None, as_json: bool
) -> None:
    """Show the ledger: counts by state and recent orders, or one order in full.

    With REQUEST_ID: the order's record, its attempts (one result is owed to Pax8 per
    attempt) and its history of state changes. Exit 1 if the ledger does not know it.

    \b
    Examples:
      fulfill status
      fulfill status --state dead --limit 50
      fulfill status 5d0c6a4e-8f5b-4c1e-9a57-0c7f2b8f1d2a
      fulfill status --json | jq .counts
    """
    ledger = runtime().ledger()
    if request_id:
        lost_after = runtime().settings.worker_lost_after_seconds
        try:
            view = describe(ledger, which(request_id, scope), lost_after=lost_after)
        except AmbiguousId as exc:
            raise CommandFailed(f"{exc}: pass --scope") from None
        if view is None:
            raise CommandFailed(f"no order {request_id} in the ledger")
        if as_json:
            echo_json(view)
        else:
            _print_one(view)
        return
    summary = overview(ledger, state, limit)
    if as_json:
        echo_json(summary)
    else:
        _print_overview(summary, state)
