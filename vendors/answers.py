"""What a vendor endpoint's HTTP answer means: the one rule the ``http`` adapter and
``fulfill check-vendor`` share.

Only a 2xx is a success. Every other answer falls in one of four verdicts
(:class:`Verdict`), and the table in ``docs/vendor-answers.md`` is this module in prose:

* **refused**: the vendor refuses the order as it stands (400 and the other 4xx that carry
  the vendor's reason): ``Fail``, with the vendor's message, which the partner reads;
* **contract**: 422, this order's idempotency key was used before with another body (a bug
  in the integration): ``Fail`` saying so, and an alert;
* **busy**: 408, 409, 429 and the 5xx of a failing service: retried with backoff;
* **misconfigured**: the deployment is wrong, not the order: a redirect (3xx), a refused
  credential (401, 407, a 403 without a reason), a wrong URL (404/410 without a reason,
  405, 421, 426, 501), a request the endpoint does not take (406, 411, 413-415, 417, 431,
  505), a final 1xx, a status outside 100-599, or a 2xx too large to read. The partner can
  do nothing about any of them, and some (a 303 after the POST, an oversized 2xx) may come
  after the vendor did the work: so the order is **held**, never failed and never reported
  as a success. It is retried with backoff (the same Idempotency-Key, so a vendor that did
  the work answers its first outcome once the fix is in), every such answer is counted by
  ``fulfillment_vendor_misconfigured_total{problem}`` and alerted (Sentry, the
  ``FulfillmentVendorMisconfigured`` rule) with the fix in the message, and after
  ``PROVISION_MAX_RETRIES`` the order is ``dead``, to replay once the fix is in.

A 403, 404 or 410 is the vendor's refusal when its body gives a reason (a JSON ``message``
or its like, or short text, that is more than the status's own phrase): "Subscription … is
unknown" is a refusal, a proxy's HTML page or ``{"detail": "Not Found"}`` is a wrong URL.

Everything here reads outside input: a ``Location`` is shown only after :func:`location_text`
checked it, and a message only as text (callers escape it where they print it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx

MESSAGE_FIELDS = ("message", "errorMessage", "error", "detail")
"""Where a refusal's message is looked for in a JSON body, in this order."""

GENERIC_MESSAGES = frozenset(
    {
        "bad request",
        "conflict",
        "error",
        "failed",
        "failure",
        "forbidden",
        "gone",
        "internal server error",
        "invalid",
        "invalid request",
        "method not allowed",
        "not found",
        "unauthorized",
        "unprocessable entity",
        "unprocessable content",
        "validation error",
        "validation failed",
    }
)
"""Messages that say no more than a status does: no reason a partner could act on."""

LOCATION_MAX = 200
"""The most of a redirect's target an operator is shown."""

_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


class Verdict(StrEnum):
    """What the worker does with an answer."""

    SUCCESS = "success"  # 2xx: Success, with the ids the body carries
    REFUSED = "refused"  # Fail with the vendor's message
    CONTRACT = "contract"  # 422: Fail saying it is a bug to report, and an alert
    BUSY = "busy"  # retried with backoff (Retry-After honoured)
    MISCONFIGURED = "misconfigured"  # held: retried, alerted with the fix, then dead


class Problem(StrEnum):
    """Why a deployment is misconfigured: the ``problem`` label of the metric and alert."""

    REDIRECT = "redirect"  # 3xx: VENDOR_HTTP_URL is not the endpoint's final URL
    CREDENTIAL = "credential"  # 401, 407, 511, a 403 without a reason: VENDOR_HTTP_TOKEN
    URL = "url"  # 404/410 without a reason, 405, 421, 426, 501: VENDOR_HTTP_URL is wrong
    PROTOCOL = "protocol"  # the endpoint does not speak vendors/http-api.yaml
    TOO_LARGE = "too-large"  # a 2xx over VENDOR_HTTP_MAX_ANSWER_BYTES (or its metadata)


@dataclass(frozen=True)
class Answer:
    """A vendor's answer as read: status, headers, body (at most the cap)."""

    status: int
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: bytes = b""
    truncated: bool = False
    """The body went on past the cap: :attr:`body` is only its start."""
    url: str = ""
    """Where the call went (a relative ``Location`` is read against it)."""

    @classmethod
    def of(cls, response: httpx.Response, *, truncated: bool = False) -> Answer:
        """An :class:`Answer` from a response whose body was read."""
        return cls(
            response.status_code,
            response.headers,
            response.content,
            truncated,
            str(response.request.url) if _has_request(response) else "",
        )

    def json(self) -> Any:
        """The body as JSON, or None (empty, cut short or not JSON)."""
        if not self.body or self.truncated:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Judgement:
    """What an answer means: the verdict, and for a misconfiguration the problem and the
    sentence an operator acts on."""

    verdict: Verdict
    problem: Problem | None = None
    fix: str = ""


def judge(answer: Answer, max_bytes: int | None = None) -> Judgement:
    """The verdict on ``answer`` (the table of the module docstring)."""
    status = answer.status
    if 200 <= status < 300:
        if answer.truncated:
            return _misconfigured(Problem.TOO_LARGE, too_large(status, max_bytes))
        return Judgement(Verdict.SUCCESS)
    if 300 <= status < 400:
        return _misconfigured(Problem.REDIRECT, redirect_text(answer))
    if status == 422:
        return Judgement(Verdict.CONTRACT)
    if status in (408, 409, 429):
        return Judgement(Verdict.BUSY)
    if status in (401, 407, 511):
        return _misconfigured(Problem.CREDENTIAL, _CREDENTIAL[status])
    if status in (403, 404, 410):
        if has_reason(answer):
            return Judgement(Verdict.REFUSED)
        if status == 403:
            return _misconfigured(Problem.CREDENTIAL, _CREDENTIAL[403])
        return _misconfigured(Problem.URL, wrong_url(status))
    if status in (405, 421, 426, 501):
        return _misconfigured(Problem.URL, wrong_url(status))
    if status in _NOT_THE_CONTRACT or not 200 <= status < 600:
        return _misconfigured(Problem.PROTOCOL, not_the_contract(status))
    if status < 500:
        return Judgement(Verdict.REFUSED)
    return Judgement(Verdict.BUSY)


_NOT_THE_CONTRACT = frozenset({406, 411, 413, 414, 415, 417, 431, 505})
"""The endpoint does not take the worker's request as the contract makes it."""


def _misconfigured(problem: Problem, fix: str) -> Judgement:
    return Judgement(Verdict.MISCONFIGURED, problem, fix)


_CREDENTIAL = {
    401: "the vendor endpoint refused the worker's credential (HTTP 401): check "
    "VENDOR_HTTP_TOKEN against the token the vendor expects",
    403: "the vendor endpoint forbids the worker's calls without giving a reason (HTTP 403): "
    "check VENDOR_HTTP_TOKEN and its permissions, or a firewall in front of the endpoint",
    407: "a proxy between the worker and the vendor wants credentials (HTTP 407): put them "
    "in HTTPS_PROXY, or set NO_PROXY for the vendor's host",
    511: "a network gateway between the worker and the vendor wants a sign-in (HTTP 511): "
    "the worker's network does not reach the vendor directly",
}


def too_large(status: int, max_bytes: int | None) -> str:
    """The fix for a 2xx whose body is over the cap: the vendor may well have done the work."""
    cap = f"{max_bytes} bytes" if max_bytes else "the cap"
    return (
        f"the vendor endpoint answered {status} with a body over VENDOR_HTTP_MAX_ANSWER_BYTES "
        f"({cap}), so its ids cannot be read: the order is held, not reported; raise "
        "VENDOR_HTTP_MAX_ANSWER_BYTES or have the vendor answer only the ids and a little "
        "metadata, then the retry (same Idempotency-Key) reads the first call's answer"
    )


def wrong_url(status: int) -> str:
    """The fix for an answer that says the URL is not the vendor's order endpoint."""
    return (
        f"the vendor endpoint answered {status} {_phrase(status)} without a reason: "
        "VENDOR_HTTP_URL is probably not the vendor's order endpoint (it takes a POST of "
        "vendors/http-api.yaml); check it with fulfill check-vendor URL"
    )


def not_the_contract(status: int) -> str:
    """The fix for an answer that is not part of HTTP's or the contract's vocabulary here."""
    what = f"HTTP {status} {_phrase(status)}".rstrip() if 100 <= status < 600 else str(status)
    return (
        f"the vendor endpoint answered {what}, which the http adapter's contract "
        "(vendors/http-api.yaml) does not allow: the endpoint at VENDOR_HTTP_URL does not "
        "implement it, or something in between changes the call; check it with fulfill "
        "check-vendor URL"
    )


def redirect_text(answer: Answer) -> str:
    """The fix for a 3xx, naming where it points (checked: it is outside input)."""
    target = answer.headers.get("location")
    where = f" to {location_text(target, answer.url)}" if target else " without a Location"
    done = (
        " (a 303 may mean the vendor did the work and points to its result: the order is "
        "held, not failed, and the retry's Idempotency-Key lets the vendor answer it again)"
        if answer.status == 303
        else ""
    )
    return (
        f"the vendor endpoint answered a redirect (HTTP {answer.status}){where}: the worker "
        f"does not follow redirects; set VENDOR_HTTP_URL to the final URL{done}"
    )


def location_text(value: str, base: str = "") -> str:
    """A redirect's target fit to show: an http(s) URL with a plain host name or address,
    without credentials, query or fragment, at most :data:`LOCATION_MAX` printable ASCII
    characters; otherwise a description of what it is not."""
    try:
        target = urlsplit(urljoin(base, value.strip()) if base else value.strip())
        host, port = target.hostname, target.port
    except ValueError:
        return "(a Location that is not a URL)"
    if target.scheme not in ("http", "https") or not host:
        return "(a Location that is not an http(s) URL)"
    if not _HOSTNAME.fullmatch(host if ":" not in host else f"[{host}]"):
        return "(a Location whose host is not a plain name or address)"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = quote(target.path, safe="/%-._~!$&'()*+,;=:@")
    shown = urlunsplit((target.scheme, netloc, path, "", ""))
    if target.query or target.fragment:
        shown += " (query left out)"
    if len(shown) > LOCATION_MAX:
        shown = shown[: LOCATION_MAX - 3] + "..."
    return shown


def has_reason(answer: Answer) -> bool:
    """Whether the body gives a reason beyond the status (a refusal, not a wrong URL): a
    message in a JSON field of :data:`MESSAGE_FIELDS`, or short plain text, that says more
    than the status's own phrase."""
    body = answer.json()
    if isinstance(body, dict):
        said = _field(body)
    else:
        said = _plain(answer) if body is None else ""
    bare = said.lower().strip(" .!:")
    return bool(bare) and bare not in GENERIC_MESSAGES and bare != _phrase(answer.status).lower()


def _field(body: dict[str, Any]) -> str:
    for key in MESSAGE_FIELDS:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _plain(answer: Answer) -> str:
    text = "" if answer.truncated else answer.text.strip()
    if len(text) < 1000 and "<html" not in text.lower() and not text.startswith(("{", "[", "<")):
        return text
    return ""


def message_of(answer: Answer, fallback: str | None = None) -> str:
    """The message of a refusal: a JSON field of :data:`MESSAGE_FIELDS`, or short plain text."""
    body = answer.json()
    said = _field(body) if isinstance(body, dict) else ""
    if said:
        return said
    text = "" if answer.truncated else answer.text.strip()
    if text and len(text) < 1000 and "<html" not in text.lower():
        return text
    if fallback is not None:
        return fallback
    return f"The vendor refused the order (HTTP {answer.status})."


def _phrase(status: int) -> str:
    return httpx.codes.get_reason_phrase(status)


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - httpx raises when a response was built without one
    except RuntimeError:
        return False
    return True
