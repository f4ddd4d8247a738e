"""What ``fulfill certify`` simulates, in which order, and what each order must get.

Orders come in the sequences a real customer goes through, each on one subscription
(Pax8's simulation keeps no state between order events, so every later event carries the
ids of the first, and the external ids the vendor returned, as Pax8's own details would):

* NetNew → Update → ChangeProduct → Renewal → Deprovision;
* TrialCreate → TrialConvert;
* PartnerEnrollment.

A type asked for alone gets the step that creates its subscription first, as ``setup``
(``--types Renewal`` runs NetNew, then Renewal). The failure path is one more order the
vendor must refuse with one ``Fail`` a partner can act on: what provokes a refusal is the
vendor's to say (``--fail-case key=value``); for the ``example`` vendor it is a company
domain already in use (the subscription sequence's own), and for another vendor without
``--fail-case`` it is skipped, with a note in the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pax8.models import RequestType

SUBSCRIPTION = (
    RequestType.NET_NEW,
    RequestType.UPDATE,
    RequestType.CHANGE_PRODUCT,
    RequestType.RENEWAL,
    RequestType.DEPROVISION,
)
TRIAL = (RequestType.TRIAL_CREATE, RequestType.TRIAL_CONVERT)
PARTNER = (RequestType.PARTNER_ENROLLMENT,)
SEQUENCES: tuple[tuple[str, tuple[RequestType, ...]], ...] = (
    ("subscription", SUBSCRIPTION),
    ("trial", TRIAL),
    ("partner", PARTNER),
)
"""Each sequence's first type creates what the others change."""

ALL_TYPES: tuple[RequestType, ...] = (*SUBSCRIPTION, *TRIAL, *PARTNER)

EXTERNAL_ID_FIELDS = (
    "externalProvisionerSubscriptionId",
    "externalProvisionerCompanyId",
    "externalProvisionerPartnerId",
    "externalProvisionerPartnerEnrollmentId",
)
"""What a Success saves at Pax8 and Pax8 sends back in every later detail."""


class Role(StrEnum):
    """Why an order is in the run."""

    REQUIRED = "required"  # a type asked for: it must pass
    SETUP = "setup"  # creates the subscription a required type changes
    FAILURE = "failure-path"  # the vendor must refuse it with one actionable Fail


@dataclass(frozen=True)
class Step:
    """One order of a sequence."""

    sequence: str
    type: RequestType
    role: Role

    @property
    def creates(self) -> bool:
        """The first step of its sequence: the others need it to succeed."""
        return dict(SEQUENCES).get(self.sequence, ())[:1] == (self.type,)


def plan(types: Iterable[RequestType]) -> list[list[Step]]:
    """The sequences to run for the ``types`` asked (each with its creating step)."""
    wanted = set(types)
    out = []
    for name, sequence in SEQUENCES:
        asked = [kind for kind in sequence if kind in wanted]
        if not asked:
            continue
        steps = [Step(name, kind, Role.REQUIRED) for kind in asked]
        if sequence[0] not in wanted:
            steps.insert(0, Step(name, sequence[0], Role.SETUP))
        out.append(steps)
    return out


def parse_types(text: str) -> list[RequestType]:
    """``NetNew,Update`` (any case; ``all``) as request types; ValueError naming the bad one."""
    if text.strip().lower() in ("", "all"):
        return list(ALL_TYPES)
    by_name = {kind.value.lower(): kind for kind in RequestType}
    out: list[RequestType] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind = by_name.get(part.lower())
        if kind is None:
            raise ValueError(f"{part!r} is not a request type (one of {', '.join(by_name)})")
        if kind not in out:
            out.append(kind)
    return out


def _id() -> str:
    return str(uuid.uuid4())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Subject:
    """The customer a sequence acts for: the ids every order of it repeats, and what the
    vendor returned (saved at Pax8, sent back in later details)."""

    tag: str
    subscription_id: str = field(default_factory=_id)
    company_id: str = field(default_factory=_id)
    partner_id: str = field(default_factory=_id)
    product_id: str = field(default_factory=_id)
    quantity: int = 1
    external_ids: dict[str, str] = field(default_factory=dict)

    @property
    def company_domain(self) -> str:
        """A domain no other run uses (a vendor may keep one company per domain)."""
        return f"certify-{self.tag}.example.com"

    def base(self) -> dict[str, Any]:
        """The provisionRequest fields every order of the sequence carries."""
        return {
            "subscriptionId": self.subscription_id,
            "companyId": self.company_id,
            "companyName": f"Certification company {self.tag}",
            "companyDomain": self.company_domain,
            "partnerId": self.partner_id,
            "partnerName": f"Certification partner {self.tag}",
            "partnerDomain": f"partner-{self.tag}.example.com",
            "productId": self.product_id,
            "productName": "Certified product",
            "quantity": self.quantity,
            "billingTerm": "Monthly",
            "commitmentTermMonths": 12,
        }

    def absorb(self, external_ids: Mapping[str, str]) -> None:
        """Keep the external ids a Success saved at Pax8."""
        self.external_ids.update({k: v for k, v in external_ids.items() if v})


@dataclass(frozen=True)
class OrderSpec:
    """One order event to post, and the result it must get."""

    step: Step
    body: dict[str, Any]
    expect: str = "Success"

    @property
    def label(self) -> str:
        """``NetNew`` (``NetNew (setup)``, ``NetNew (failure path)``)."""
        if self.step.role is Role.REQUIRED:
            return self.step.type.value
        return f"{self.step.type.value} ({self.step.role.value.replace('-', ' ')})"


def order(
    step: Step,
    subject: Subject,
    request: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    new_product_id: str | None = None,
    now: datetime | None = None,
) -> OrderSpec:
    """The order event of ``step`` for ``subject`` (``request``/``details``: fields every
    order carries, from ``--request``/``--details``)."""
    moment = now or datetime.now(UTC)
    fields = subject.base() | {"type": step.type.value}
    kind = step.type
    if kind is RequestType.UPDATE:
        fields["quantity"] = subject.quantity + 1
    elif kind is RequestType.CHANGE_PRODUCT:
        fields["oldProductId"] = subject.product_id
        fields["productId"] = new_product_id or _id()
        fields["productName"] = "Certified product (upgraded)"
    elif kind is RequestType.RENEWAL:
        fields["commitment"] = {
            "term": {"months": 12, "endDate": _iso(moment + timedelta(days=365))}
        }
    elif kind is RequestType.TRIAL_CREATE:
        fields["billingTerm"] = "Trial"
        fields["trialEndDate"] = _iso(moment + timedelta(days=30))
        fields["trialAutoConverts"] = False
    elif kind is RequestType.PARTNER_ENROLLMENT:
        fields["partnerEnrollmentId"] = _id()
    fields.update(request or {})
    body: dict[str, Any] = {"provisionRequest": fields}
    carried = {**subject.external_ids, **(details or {})}
    if carried:
        body["provisionDetail"] = {"details": carried}
    return OrderSpec(step, body)


@dataclass(frozen=True)
class FailCase:
    """How to provoke a refusal at this vendor: request fields (``type`` picks the order's
    type, NetNew by default), detail fields, and where they came from."""

    type: RequestType = RequestType.NET_NEW
    request: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    taken_domain: bool = False
    """The example vendor's default: the subscription sequence's domain, once it is taken."""

    @classmethod
    def parse(cls, pairs: Mapping[str, Any]) -> FailCase:
        """``--fail-case`` pairs: ``type=Update``, ``details.KEY=VALUE``, any request field."""
        request: dict[str, Any] = {}
        details: dict[str, Any] = {}
        kind = RequestType.NET_NEW
        for key, value in pairs.items():
            if key == "type":
                (kind,) = parse_types(str(value))
            elif key.startswith("details."):
                details[key.removeprefix("details.")] = value
            else:
                request[key] = value
        shown = ", ".join(f"{k}={v}" for k, v in pairs.items())
        return cls(kind, request, details, f"--fail-case {shown}")

    @classmethod
    def example(cls) -> FailCase:
        """The ``example`` vendor refuses a company domain another company already uses."""
        return cls(
            note="the example vendor refuses a company domain already in use: a new company "
            "with the subscription sequence's domain",
            taken_domain=True,
        )

    def spec(self, subject: Subject, taken: Subject | None) -> OrderSpec:
        """The failure order, for a fresh ``subject`` (``taken``: whose domain is in use)."""
        fields = subject.base() | {"type": self.type.value}
        if self.taken_domain and taken is not None:
            fields["companyDomain"] = taken.company_domain
        fields.update(self.request)
        body: dict[str, Any] = {"provisionRequest": fields}
        if self.details:
            body["provisionDetail"] = {"details": dict(self.details)}
        return OrderSpec(Step("failure", self.type, Role.FAILURE), body, expect="Fail")
