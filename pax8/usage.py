"""Pax8's Vendor Usage API: the usage line model and a client with its own token.

What Pax8 documents (its pages ``usage-overview``, ``usage-lines``,
``how-to-use-usage-endpoints``, ``overwrite-same-day-usage``, ``api-limitations``,
``authentication`` and the OpenAPI document ``vendor-usage-endpoints.json``)::

    POST /v2/usage/lines?subscriptionId=…|externalSubscriptionId=…&billingPeriod=yyyy-MM
         [&overwriteSameDayUsage=false]      body: a JSON array of usage lines
    GET  /v2/usage/lines?subscriptionId=…|externalSubscriptionId=…&billingPeriod=yyyy-MM
         &summaryKey=…                       answer: a page of usage lines

A token for these calls is asked for with the audience ``api://usage``: a provisioning
token (``api://provisioning``) is a different token, so :class:`UsageClient` keeps its own
token cache per credential set. ``summaryKey`` and ``summaryDisplayName`` are at most 255
characters; Pax8 advises at most 50 lines per request (the call is synchronous and times
out above that) and allows at most 1,000 posts a minute.

Writes are never retried here (the caller knows which repeat is safe: see
:mod:`fulfillment.usage.batches`); reads are, as for the provisioning API.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from pydantic import StringConstraints, TypeAdapter

from pax8.client import Pax8Client
from pax8.models import Pax8Model, to_wire

__all__ = [
    "MAX_LINES_PER_POST",
    "SUMMARY_MAX",
    "USAGE_AUDIENCE",
    "UsageAnswer",
    "UsageClient",
    "UsageLine",
    "UsageTarget",
]

USAGE_AUDIENCE = "api://usage"
MAX_LINES_PER_POST = 50
"""Pax8's advice: no more than fifty usage lines in one request (``api-limitations``)."""
SUMMARY_MAX = 255
"""``summaryKey`` and ``summaryDisplayName`` are at most 255 characters (``usage-lines``)."""

SummaryText = Annotated[
    str, StringConstraints(min_length=1, max_length=SUMMARY_MAX, strip_whitespace=False)
]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class UsageLine(Pax8Model):
    """One usage line: a product's total for a summary (most often a company) in a period.

    ``quantity`` is the **current total for the whole billing period**: Pax8 does not add
    posts up, the latest one is what it bills.
    """

    summary_key: SummaryText
    summary_display_name: SummaryText
    quantity: float
    product_id: NonEmpty
    unit_of_measurement: NonEmpty


LINES = TypeAdapter(list[UsageLine])


@dataclass(frozen=True)
class UsageTarget:
    """Which subscription a usage call is about: Pax8's id, or the vendor's own id that
    the provisioning result saved (``externalProvisionerSubscriptionId``)."""

    subscription_id: str | None = None
    external_subscription_id: str | None = None

    def __post_init__(self) -> None:
        if (self.subscription_id is None) == (self.external_subscription_id is None):
            raise ValueError("give exactly one of subscription_id and external_subscription_id")

    def params(self) -> dict[str, str]:
        """The query parameter that names the subscription."""
        if self.subscription_id is not None:
            return {"subscriptionId": self.subscription_id}
        assert self.external_subscription_id is not None
        return {"externalSubscriptionId": self.external_subscription_id}


@dataclass(frozen=True)
class UsageAnswer:
    """Pax8's answer to one accepted post: its status and body (kept as it came)."""

    status: int
    body: Any


class UsageClient(Pax8Client):
    """The Usage API with production and simulation credential sets (audience ``api://usage``).

    Built on :class:`~pax8.client.Pax8Client` for its transport, token refresh, error
    mapping and paging; only the usage operations below belong to this API.
    """

    def __init__(self, api_url: str, token_url: str, **kwargs: Any) -> None:
        kwargs.setdefault("audience", USAGE_AUDIENCE)
        super().__init__(api_url, token_url, **kwargs)

    def post_lines(
        self,
        target: UsageTarget,
        billing_period: str,
        lines: Sequence[UsageLine],
        *,
        overwrite: bool = True,
        simulation: bool = False,
    ) -> UsageAnswer:
        """``POST /usage/lines``: the period's current totals for the lines' summaries.

        ``overwrite`` False sends ``overwriteSameDayUsage=false``: the lines are added to
        those posted earlier today for the same summaryKey instead of replacing them (the
        second and later batches of a summary with more than 50 lines).
        """
        params: dict[str, str] = {**target.params(), "billingPeriod": billing_period}
        if not overwrite:
            params["overwriteSameDayUsage"] = "false"
        response = self._request(
            "POST",
            "/usage/lines",
            simulation=simulation,
            idempotent=False,
            params=params,
            json=[to_wire(line) for line in lines],
        )
        return UsageAnswer(response.status_code, _body(response))

    def get_lines(
        self,
        target: UsageTarget,
        billing_period: str,
        summary_key: str,
        *,
        simulation: bool = False,
    ) -> Iterator[UsageLine]:
        """``GET /usage/lines``: what Pax8 holds for one summary of a period, every page."""
        return self._list(
            "/usage/lines",
            UsageLine,
            simulation=simulation,
            billingPeriod=billing_period,
            summaryKey=summary_key,
            **target.params(),
        )


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text[:1000]
