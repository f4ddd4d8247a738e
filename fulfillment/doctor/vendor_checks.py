"""The vendor: its adapter loads and, for the ``http`` adapter, the endpoint answers and
refuses a call without the token.

That one call is the quick part of ``fulfill check-vendor``: a simulated NetNew
(``isSimulation: true``, ids made up) without ``Authorization``. A vendor that accepts it
takes orders from anyone who can reach it; nothing else is sent (no order with the token).
"""

from __future__ import annotations

import httpx

from config.settings import ConfigError
from fulfillment.doctor.context import PROBE_TIMEOUT, Doctor
from fulfillment.doctor.result import Finding, fail, ok, warn, worst
from pax8.models import RequestType
from vendors.answers import message_of
from vendors.conformance import OrderMaker
from vendors.http import HttpAdapter
from vendors.loader import adapter_class


def check_vendor(doctor: Doctor) -> Finding:
    """Each configured adapter loads; an ``http`` endpoint refuses a call without the token."""
    settings = doctor.settings
    specs = {
        settings.vendor_adapter: "VENDOR_ADAPTER",
        settings.simulation_adapter: "SIMULATION_VENDOR_ADAPTER",
    }
    findings: list[Finding] = []
    for spec, variable in specs.items():
        try:
            adapter_class(spec, variable)
        except ConfigError as exc:
            findings.append(fail(f"{exc}", f"fix {variable}: the workers refuse to start"))
            continue
        if spec == "http":
            findings.append(_http(doctor))
        elif spec == "example":
            findings.append(ok("the example vendor (its data in REDIS_URL's Redis)"))
        else:
            findings.append(ok(f"{spec} loads (a Python adapter: fulfill doctor does not call it)"))
    return worst(findings)


def _http(doctor: Doctor) -> Finding:
    settings = doctor.settings
    url = settings.vendor_http_url
    if not url:
        return fail("VENDOR_HTTP_URL is not set", "set VENDOR_HTTP_URL: the http adapter needs it")
    if settings.vendor_http_token is None:
        return warn(
            f"VENDOR_HTTP_TOKEN is not set: the worker calls {url} without a token, so anyone "
            "who reaches it can provision (not probed)",
            "have the vendor require a bearer token and set VENDOR_HTTP_TOKEN",
        )
    timeout = min(settings.vendor_http_timeout_seconds, PROBE_TIMEOUT)
    anonymous = HttpAdapter(url=url, timeout=timeout)
    try:
        response = anonymous.send(OrderMaker().make(RequestType.NET_NEW))
    except httpx.HTTPError as exc:
        return fail(
            f"{url} does not answer: {type(exc).__name__}",
            "check VENDOR_HTTP_URL and that the workers' hosts reach the vendor",
        )
    finally:
        anonymous.close()
    status = response.status
    if status in (401, 403):
        return ok(f"{url} answers and refuses a call without the token ({status})")
    if 200 <= status < 300:  # only a 2xx is the vendor taking it (vendors/answers.py)
        return fail(
            f"{url} accepted an order without the token ({status}): anyone who reaches it "
            "can provision",
            "make the vendor endpoint require Authorization: Bearer $VENDOR_HTTP_TOKEN",
        )
    text = message_of(response, fallback="")
    return warn(
        f"{url} answered {status} to a call without the token, not 401 or 403"
        + (f" ({text[:120]})" if text else ""),
        "make the vendor check the token first and answer 401 without it",
    )
