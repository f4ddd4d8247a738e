"""Which webhook configurations Pax8 delivers to, and which configured credentials are live.

Pax8 delivers an environment's notifications to its newest configuration; the receiver
accepts the credentials listed in ``PAX8_WEBHOOK_SECRETS`` (``PAX8_SIMULATION_...``). During
a rotation both lists hold two; this view says which configuration each credential belongs
to, so an operator sees when an old one can go. Credentials are only ever shown masked.

Pax8 lists a configuration's credential masked (its last four characters): a configured
credential is matched to a configuration by those, or in full where the API shows it. The
ledger says which configuration delivered each order (``webhookId``), so the view also
shows when each one last delivered.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime

from config.scrub import mask
from config.settings import Settings
from fulfillment.ledger import LedgerReader
from pax8.client import Pax8Client
from pax8.errors import Pax8Error

DEFAULT_HEADER = "pax8ApiTokenV1"


def secrets_variable(simulation: bool) -> str:
    """The setting that lists accepted credentials of production (or simulation)."""
    return "PAX8_SIMULATION_WEBHOOK_SECRETS" if simulation else "PAX8_WEBHOOK_SECRETS"


@dataclass(frozen=True)
class Configuration:
    """One webhook configuration at Pax8."""

    id: str
    url: str
    header: str
    credential: str
    """Masked."""
    created: datetime
    receives: bool
    """The newest: where Pax8 delivers now."""
    accepted: bool
    """The receiver holds its credential (in the setting)."""
    last_delivery: float | None = None
    """When an order it delivered was last updated in the ledger (recent orders only)."""


@dataclass(frozen=True)
class Credential:
    """One credential the receiver accepts."""

    masked: str
    live: bool
    """A configuration at Pax8 carries it."""
    configuration: str | None = None


@dataclass
class WebhookView:
    """One environment's configurations and the receiver's credentials."""

    environment: str
    setting: str
    configured: bool
    """Whether Pax8 credentials are configured for this environment at all."""
    provisioner: str = ""
    configurations: list[Configuration] = field(default_factory=list)
    credentials: list[Credential] = field(default_factory=list)
    error: str = ""


def recent_deliveries(ledger: LedgerReader, limit: int = 1000) -> dict[str, float]:
    """Webhook configuration id → when the latest of the ``limit`` most recently updated
    orders it delivered was updated."""
    seen: dict[str, float] = {}
    for record in ledger.recent(limit=limit):
        if record.webhook_id and record.webhook_id not in seen:
            seen[record.webhook_id] = record.updated_at
    return seen


def holds(listed: str, secret: str) -> bool:
    """Whether a credential as Pax8 lists it (masked, or in full) is ``secret``."""
    if listed.startswith("*"):
        tail = listed.lstrip("*")
        return len(tail) >= 4 and hmac.compare_digest(secret[-len(tail) :], tail)
    return hmac.compare_digest(listed.encode(), secret.encode())


def webhook_view(
    pax8: Pax8Client,
    settings: Settings,
    simulation: bool,
    deliveries: dict[str, float] | None = None,
) -> WebhookView:
    """The view of one environment (production, or simulation); Pax8's errors are kept in
    ``error`` rather than raised, so one page can show both environments. ``deliveries``
    (:func:`recent_deliveries`) adds when each configuration last delivered."""
    environment = "simulation" if simulation else "production"
    secrets = [
        secret.get_secret_value()
        for secret in (
            settings.pax8_simulation_webhook_secrets
            if simulation
            else settings.pax8_webhook_secrets
        )
    ]
    view = WebhookView(
        environment, secrets_variable(simulation), settings.has_credentials(simulation)
    )
    hooks = []
    if view.configured:
        try:
            provisioner = pax8.provisioner(simulation=simulation)
            view.provisioner = f"{provisioner.name} ({provisioner.id})"
            if provisioner.id is not None:
                hooks = list(pax8.list_webhooks(provisioner.id, simulation=simulation))
        except Pax8Error as exc:
            view.error = str(exc)
    latest = max(hooks, key=lambda hook: hook.created_date).id if hooks else None

    for hook in hooks:
        credential = hook.shared_secret.credential
        view.configurations.append(
            Configuration(
                id=hook.id or "-",
                url=hook.url,
                header=hook.shared_secret.header or DEFAULT_HEADER,
                credential=mask(credential),
                created=hook.created_date,
                receives=hook.id is not None and hook.id == latest,
                accepted=any(holds(credential, secret) for secret in secrets),
                last_delivery=(deliveries or {}).get(hook.id or ""),
            )
        )
    for secret in secrets:
        owner = next((h for h in hooks if holds(h.shared_secret.credential, secret)), None)
        view.credentials.append(
            Credential(mask(secret), owner is not None, owner.id if owner else None)
        )
    return view
