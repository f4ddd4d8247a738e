"""Pax8: both credential sets, each environment's webhook configuration, and the receiver
answering where that configuration points.

Pax8 delivers an environment's notifications to its newest webhook configuration, with its
credential in its header. So the newest configuration must point at this deployment
(``PUBLIC_URL/webhooks/pax8``), name the header the receiver reads
(``PAX8_WEBHOOK_HEADER``), and carry a credential the receiver's setting lists; and the
receiver must answer there. The last is probed with an empty body and the credential Pax8
sends: the receiver checks the credential first, so ``400`` (a body without ids: nothing
is recorded) proves the route and the credential, and ``401`` that the deployed receiver
does not hold it. The credential is only ever sent to ``PUBLIC_URL`` (this deployment),
never to a URL read from Pax8.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from config.scrub import mask
from config.settings import Settings, is_loopback
from fulfillment.doctor.context import Doctor
from fulfillment.doctor.result import Finding, fail, ok, warn, worst
from fulfillment.views.webhook_configs import Configuration, holds, secrets_variable, webhook_view
from pax8.errors import AuthenticationError, Pax8Error, TransientError

WEBHOOK_PATH = "/webhooks/pax8"
"""The receiver's route for Pax8's notifications (``receiver/webhooks.py``)."""


def environment(simulation: bool) -> str:
    """``production`` or ``simulation``."""
    return "simulation" if simulation else "production"


def _prefix(simulation: bool) -> str:
    return "PAX8_SIMULATION_" if simulation else "PAX8_"


def _flag(simulation: bool) -> str:
    return " --simulation" if simulation else ""


def public_webhook_url(settings: Settings) -> str | None:
    """Where Pax8 should deliver: ``PUBLIC_URL`` + the receiver's route (None: not set)."""
    if not settings.public_url:
        return None
    return settings.public_url.rstrip("/") + WEBHOOK_PATH


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_url(a: str, b: str) -> bool:
    """Whether two URLs name the same endpoint (scheme and host in any case, a default
    port written or not, a trailing slash or not)."""
    return _url_key(a) == _url_key(b)


def _url_key(url: str) -> tuple[str, str, int | None, str, str]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port out of range: compare it as written
        port = None
    return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/") or "/", parts.query


def check_credentials(doctor: Doctor, simulation: bool) -> Finding:
    """The credential set gets a token and sees its provisioner."""
    settings = doctor.settings
    prefix, env = _prefix(simulation), environment(simulation)
    if not settings.has_credentials(simulation):
        if simulation:
            return warn(
                "not configured: simulated orders cannot be answered, fulfill certify cannot run",
                f"set {prefix}CLIENT_ID and {prefix}CLIENT_SECRET (your Pax8 contact has them)",
            )
        return warn(
            "not configured: production orders can be neither read nor answered",
            f"set {prefix}CLIENT_ID and {prefix}CLIENT_SECRET before going live",
        )
    try:
        provisioner = doctor.services.pax8.provisioner(simulation=simulation)
    except AuthenticationError as exc:
        return fail(
            f"Pax8 refused the {env} credentials: {exc}",
            f"check {prefix}CLIENT_ID and {prefix}CLIENT_SECRET with your Pax8 contact",
        )
    except TransientError as exc:
        return fail(
            f"Pax8 does not answer: {exc}",
            "check PAX8_TOKEN_URL and PAX8_API_URL, and that this host reaches Pax8",
        )
    except Pax8Error as exc:
        return fail(f"Pax8 answered: {exc}", f"check {prefix}CLIENT_ID with your Pax8 contact")
    return ok(f"token issued; provisioner {provisioner.name} ({provisioner.id})")


def latest_configuration(doctor: Doctor, simulation: bool) -> tuple[Configuration | None, str]:
    """The configuration Pax8 delivers to now (None if there is none), or an error text."""
    key = f"latest-configuration:{environment(simulation)}"
    if key not in doctor.memo:
        view = webhook_view(doctor.services.pax8, doctor.settings, simulation)
        latest = next((c for c in view.configurations if c.receives), None)
        doctor.memo[key] = (None, view.error) if view.error else (latest, "")
    found: tuple[Configuration | None, str] = doctor.memo[key]
    return found


def check_webhook(doctor: Doctor, simulation: bool) -> Finding:
    """The newest configuration points at ``PUBLIC_URL`` with the receiver's header and a
    credential the receiver's setting holds."""
    settings = doctor.settings
    env, setting = environment(simulation), secrets_variable(simulation)
    if not settings.has_credentials(simulation):
        return warn(
            f"not checked: no {env} credentials to read the configurations with",
            f"set {_prefix(simulation)}CLIENT_ID and {_prefix(simulation)}CLIENT_SECRET",
        )
    latest, error = latest_configuration(doctor, simulation)
    wanted = public_webhook_url(settings)
    create = f"fulfill webhooks create {wanted or 'PUBLIC_URL/webhooks/pax8'}{_flag(simulation)}"
    if error:
        return fail(f"Pax8 did not list the configurations: {error}", "see the credentials row")
    if latest is None:
        return warn(
            f"no {env} configuration: Pax8 has nowhere to deliver {env} notifications "
            "(reconciliation still finds the orders, late)",
            f"{create}, then put its credential in {setting}",
        )
    findings: list[Finding] = []
    if wanted is None:
        findings.append(
            warn(
                f"delivers to {latest.url}; PUBLIC_URL is not set, so whether that is this "
                "deployment cannot be told",
                "set PUBLIC_URL to the receiver's public base URL (https://fulfil.example.com)",
            )
        )
    elif not same_url(latest.url, wanted):
        findings.append(
            fail(
                f"configuration {latest.id} delivers to {latest.url}, not to PUBLIC_URL "
                f"({wanted}): this deployment gets no {env} notification",
                f"{create}, then put its credential in {setting} (or fix PUBLIC_URL)",
            )
        )
    if latest.header.lower() != settings.pax8_webhook_header.lower():
        findings.append(
            fail(
                f"configuration {latest.id} sends its credential in {latest.header}; the "
                f"receiver reads PAX8_WEBHOOK_HEADER={settings.pax8_webhook_header}: every "
                "delivery gets 401",
                f"set PAX8_WEBHOOK_HEADER={latest.header} (or {create} "
                f"--header {settings.pax8_webhook_header})",
            )
        )
    if not latest.accepted:
        findings.append(
            fail(
                f"the credential of configuration {latest.id} ({latest.credential}) is not in "
                f"{setting}: every delivery gets 401",
                f"put that configuration's credential in {setting}; if it is lost, {create} "
                "and use the new one",
            )
        )
    if urlsplit(latest.url).scheme == "http" and not is_loopback(
        urlsplit(latest.url).hostname or ""
    ):
        findings.append(
            warn(
                f"configuration {latest.id} is plain http: Pax8 sends the credential in clear",
                "serve the receiver over https and create a configuration for the https URL",
            )
        )
    if findings:
        return worst(findings)
    return ok(
        f"configuration {latest.id} delivers to {latest.url}, header {latest.header}, "
        f"credential {latest.credential} accepted ({setting})"
    )


def check_receiver(doctor: Doctor, simulation: bool) -> Finding:
    """The receiver at ``PUBLIC_URL`` accepts the credential Pax8 sends (an empty probe)."""
    settings = doctor.settings
    env, setting = environment(simulation), secrets_variable(simulation)
    wanted = public_webhook_url(settings)
    if wanted is None:
        return warn(
            "not probed: PUBLIC_URL is not set",
            "set PUBLIC_URL to the receiver's public base URL",
        )
    if not settings.has_credentials(simulation):
        return warn(
            f"not probed: no {env} credentials to read the configuration with",
            f"set {_prefix(simulation)}CLIENT_ID and {_prefix(simulation)}CLIENT_SECRET",
        )
    latest, error = latest_configuration(doctor, simulation)
    listed = (
        settings.pax8_simulation_webhook_secrets if simulation else settings.pax8_webhook_secrets
    )
    secrets = [secret.get_secret_value() for secret in listed]
    held = [s for s in secrets if latest is not None and holds(latest.credential, s)]
    if error or latest is None or not held:
        return warn(
            f"not probed: no {env} configuration whose credential {setting} holds",
            "see the webhook row",
        )
    header = latest.header
    try:
        response = doctor.http.post(
            wanted,
            content=b"{}",
            headers={"Content-Type": "application/json", header: held[0]},
        )
    except httpx.HTTPError as exc:
        return fail(
            f"nothing answers at {wanted}: {type(exc).__name__}: {exc}",
            "start the receiver (Procfile web), or fix PUBLIC_URL or the proxy in front of it",
        )
    status = response.status_code
    if status == 400 and _names_a_field(response):
        return ok(
            f"{wanted} accepts the credential of configuration {latest.id} (an empty probe "
            "got 400 naming the field; nothing recorded)"
        )
    if status == 401:
        return fail(
            f"the receiver at {wanted} refuses the credential Pax8 sends ({mask(held[0])}): "
            f"it was started without it in {setting}",
            f"restart the receiver with {setting} holding the configuration's credential",
        )
    if status == 503:
        return fail(
            f"the receiver at {wanted} answers 503: it cannot reach Redis",
            "check the receiver's REDIS_URL (REDIS_SENTINELS) and Redis",
        )
    if status in (404, 405):
        return fail(
            f"{wanted} answers {status}: no fulfillment receiver there",
            "PUBLIC_URL must reach the receiver (gunicorn, Procfile web) and its /webhooks/pax8",
        )
    return warn(
        f"{wanted} answered {status} to an empty probe (the receiver answers 400): is this "
        "the fulfillment receiver, behind a proxy that changes answers?",
        "point PUBLIC_URL at the receiver itself, or at a proxy that passes its answers",
    )


def _names_a_field(response: httpx.Response) -> bool:
    """The receiver's 400 says which field is wrong (``{"error", "field"}``)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "field" in body
