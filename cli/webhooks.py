"""``fulfill webhooks``: the webhook configurations Pax8 delivers notifications to.

Pax8 generates each configuration's credential and shows it once, in the answer to its
creation; configurations are immutable, so a rotation is: create a new one, accept both
credentials, drop the old one once deliveries carry the new one.
"""

from __future__ import annotations

from typing import Any

import click

from cli.context import runtime
from cli.output import echo_json, mask, table, when
from fulfillment.views.webhook_configs import DEFAULT_HEADER, secrets_variable
from pax8.models import CreatedWebhook, Provisioner, Webhook


def instructions(created: CreatedWebhook, simulation: bool) -> str:
    """How to put a new credential into service, and how to rotate."""
    variable = secrets_variable(simulation)
    header = created.shared_secret.header
    lines = [
        "Add the credential to the receiver's settings (comma-separated, keep the current",
        "ones while Pax8 may still deliver with them), then restart the receiver:",
        f"  {variable}=<current credentials>,<the credential above>",
    ]
    if header != DEFAULT_HEADER:
        lines.append(f"  PAX8_WEBHOOK_HEADER={header}")
    lines += [
        "",
        "Rotation: 1. create the new configuration (this command); 2. accept both credentials",
        f"in {variable}; 3. once deliveries carry the new one (Pax8 delivers to the newest",
        "configuration; see fulfill webhooks list), drop the old credential from the setting.",
    ]
    return "\n".join(lines)


def _webhook_row(hook: Webhook, latest_id: str | None) -> tuple[str, ...]:
    return (
        hook.id or "-",
        hook.url,
        hook.shared_secret.header or DEFAULT_HEADER,
        mask(hook.shared_secret.credential),
        when(hook.created_date.timestamp()),
        "yes" if hook.id is not None and hook.id == latest_id else "",
    )


def _environment(simulation: bool) -> str:
    return "simulation" if simulation else "production"


def _provisioner(simulation: bool) -> Provisioner:
    return runtime().pax8(simulation).provisioner(simulation=simulation)


@click.group(short_help="Create and list Pax8 webhook configurations.")
def webhooks() -> None:
    """Create and list Pax8 webhook configurations (where Pax8 sends notifications).

    Uses the credential set's provisioner: production by default, simulation with
    --simulation (PAX8_SIMULATION_CLIENT_ID/_SECRET). PAX8_API_URL may point at the
    sandbox.

    \b
    Examples:
      fulfill webhooks create https://fulfil.example.com/webhooks/pax8
      fulfill webhooks create https://fulfil.example.com/webhooks/pax8 --simulation
      fulfill webhooks list --simulation
    """


@webhooks.command("create")
@click.argument("url")
@click.option(
    "--header", metavar="NAME", help=f"Header carrying the credential [{DEFAULT_HEADER}]."
)
@click.option("--simulation", is_flag=True, help="Configure the simulation environment.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the credential).")
def create(url: str, header: str | None, simulation: bool, as_json: bool) -> None:
    """Create a webhook configuration pointing at URL; print its credential ONCE.

    Pax8 generates the credential and never shows it again: store it in
    PAX8_WEBHOOK_SECRETS (or PAX8_SIMULATION_WEBHOOK_SECRETS with --simulation). The
    newest configuration is the one Pax8 delivers to.

    \b
    Examples:
      fulfill webhooks create https://fulfil.example.com/webhooks/pax8
      fulfill webhooks create http://127.0.0.1:8000/webhooks/pax8 --simulation
      fulfill webhooks create https://fulfil.example.com/webhooks/pax8 --header X-Pax8-Token
    """
    provisioner = _provisioner(simulation)
    assert provisioner.id is not None, "Pax8 listed a provisioner without an id"
    created = (
        runtime()
        .pax8(simulation)
        .create_webhook(provisioner.id, url, header=header, simulation=simulation)
    )
    if as_json:
        data: dict[str, Any] = created.model_dump(mode="json", by_alias=True, exclude_none=True)
        data |= {
            "provisionerId": provisioner.id,
            "environment": _environment(simulation),
            "setting": secrets_variable(simulation),
        }
        echo_json(data)
        return
    click.echo(
        f"Created {_environment(simulation)} webhook configuration {created.id or '(no id)'} "
        f"for provisioner {provisioner.name} ({provisioner.id})."
    )
    click.echo(f"  URL:        {created.url}")
    click.echo(f"  Header:     {created.shared_secret.header}")
    click.echo(f"  Credential: {created.shared_secret.credential}")
    click.echo("Pax8 shows this credential only now: store it before anything else.\n")
    click.echo(instructions(created, simulation))


@webhooks.command("list")
@click.option("--simulation", is_flag=True, help="List the simulation environment's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (credentials masked).")
def list_(simulation: bool, as_json: bool) -> None:
    """List the webhook configurations, credentials masked; the newest receives.

    \b
    Examples:
      fulfill webhooks list
      fulfill webhooks list --simulation --json
    """
    provisioner = _provisioner(simulation)
    assert provisioner.id is not None, "Pax8 listed a provisioner without an id"
    hooks = list(runtime().pax8(simulation).list_webhooks(provisioner.id, simulation=simulation))
    latest = max(hooks, key=lambda hook: hook.created_date).id if hooks else None
    if as_json:
        out = []
        for hook in hooks:
            data = hook.model_dump(mode="json", by_alias=True, exclude_none=True)
            data["sharedSecret"]["credential"] = mask(hook.shared_secret.credential)
            data["latest"] = hook.id is not None and hook.id == latest
            out.append(data)
        echo_json(out)
        return
    click.echo(
        f"{_environment(simulation).capitalize()} webhook configurations of provisioner "
        f"{provisioner.name} ({provisioner.id}):"
    )
    if not hooks:
        click.echo("  none: Pax8 has nowhere to deliver notifications (fulfill webhooks create)")
        return
    rows = [_webhook_row(hook, latest) for hook in hooks]
    click.echo(table(("id", "url", "header", "credential", "created", "receives"), rows))
