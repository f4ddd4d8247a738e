"""The vendor: each backend's adapter loads and, for the ``http`` adapter, the endpoint
answers and refuses a call without the token.

Run once per route of the routes file (one row each: ``docs/routes.md``), or once for
``VENDOR_ADAPTER``; a route's production and simulation backends are both checked, an
endpoint they share once. That one call is the quick part of ``fulfill check-vendor``: a
simulated NetNew (``isSimulation: true``, ids made up) without ``Authorization``. A vendor
that accepts it takes orders from anyone who can reach it; nothing else is sent (no order
with the token).
"""

from __future__ import annotations

import httpx

from config.routes import Backend
from config.settings import ConfigError
from fulfillment.doctor.context import PROBE_TIMEOUT, Doctor
from fulfillment.doctor.result import Finding, fail, ok, warn, worst
from pax8.models import RequestType
from vendors.answers import message_of
from vendors.conformance import OrderMaker
from vendors.http import HttpAdapter
from vendors.loader import Adapters


def check_vendor(doctor: Doctor, route: str) -> Finding:
    """Each backend of ``route`` loads; an ``http`` endpoint refuses a call without the
    token."""
    settings = doctor.settings
    adapters = Adapters(settings)
    known = settings.routes.get(route)
    if known is None:
        return fail(f"no route {route}", "see the settings row")
    try:
        adapters.check([route])
    except ConfigError as exc:
        return fail(f"{exc}", f"fix {exc.variable}: the workers refuse to start")
    findings: list[Finding] = []
    probed: set[str] = set()
    for backend in known.backends:
        if backend.simulation and known.production.same_adapter(backend):
            continue  # one adapter serves both: checked once
        which = f"{backend.environment}: " if settings.routes.from_file else ""
        if backend.adapter == "http":
            if backend.url in probed:
                continue
            probed.add(backend.url or "")
            findings.append(_http(backend, which, settings.routes.from_file))
        elif backend.adapter == "example":
            findings.append(ok(f"{which}the example vendor (its data in REDIS_URL's Redis)"))
        else:
            loads = f"{which}{backend.adapter} loads"
            findings.append(ok(f"{loads} (a Python adapter: fulfill doctor does not call it)"))
    return worst(findings)


def _http(backend: Backend, which: str, routed: bool) -> Finding:
    url = backend.url
    token_name = backend.token_env or "VENDOR_HTTP_TOKEN"
    if not url:
        return fail(
            f"{which}VENDOR_HTTP_URL is not set", "set VENDOR_HTTP_URL: the http adapter needs it"
        )
    if backend.token is None:
        setting = f"token_env of route {backend.route}" if routed else "VENDOR_HTTP_TOKEN"
        return warn(
            f"{which}no token: the worker calls {url} without one, so anyone who reaches it "
            "can provision (not probed)",
            f"have the vendor require a bearer token and set {setting}",
        )
    timeout = min(backend.timeout_seconds or PROBE_TIMEOUT, PROBE_TIMEOUT)
    anonymous = HttpAdapter(url=url, timeout=timeout)
    try:
        response = anonymous.send(OrderMaker().make(RequestType.NET_NEW))
    except httpx.HTTPError as exc:
        return fail(
            f"{which}{url} does not answer: {type(exc).__name__}",
            "check the URL and that the workers' hosts reach the vendor",
        )
    finally:
        anonymous.close()
    status = response.status
    if status in (401, 403):
        return ok(f"{which}{url} answers and refuses a call without the token ({status})")
    if 200 <= status < 300:  # only a 2xx is the vendor taking it (vendors/answers.py)
        return fail(
            f"{which}{url} accepted an order without the token ({status}): anyone who reaches "
            "it can provision",
            f"make the vendor endpoint require Authorization: Bearer ${token_name}",
        )
    text = message_of(response, fallback="")
    return warn(
        f"{which}{url} answered {status} to a call without the token, not 401 or 403"
        + (f" ({text[:120]})" if text else ""),
        "make the vendor check the token first and answer 401 without it",
    )
