"""pydantic models for every schema of Pax8's Vendor Provisioning OpenAPI.

Tolerant where Pax8 is loose: unknown fields are kept, ids are plain strings (Pax8's own
examples carry ids that are not valid UUIDs), the misspelled ``compayDomain`` and the
deprecated ``commitmentTerm*`` fields are read. Strict where Pax8 is strict: a
:class:`ProvisionResult` has status ``Success`` or ``Fail``, an error message of at most
500 characters, and external ids matching ``^[a-zA-Z0-9-_]+$``.

Field names are snake_case in Python and camelCase on the wire; serialize with
:func:`to_wire`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

__all__ = [
    "Address",
    "AttemptStatus",
    "BillingTerm",
    "Commitment",
    "CommitmentTerm",
    "CreatedSharedSecret",
    "CreatedWebhook",
    "ERROR_MESSAGE_MAX",
    "ExternalId",
    "Page",
    "PageInfo",
    "ProvisionAttempt",
    "ProvisionDetail",
    "ProvisionNotification",
    "ProvisionRequest",
    "ProvisionResult",
    "ProvisionTestingOrderEvent",
    "Provisioner",
    "RequestType",
    "ResultStatus",
    "SharedSecret",
    "SharedSecretCreate",
    "UnitOfMeasure",
    "VolumeCommitment",
    "Webhook",
    "WebhookCreate",
    "to_wire",
]

ERROR_MESSAGE_MAX = 500
EXTERNAL_ID_PATTERN = r"^[a-zA-Z0-9-_]+$"

ExternalId = Annotated[str, StringConstraints(min_length=1, pattern=EXTERNAL_ID_PATTERN)]


class RequestType(StrEnum):
    """ProvisionRequest.type: what the vendor is asked to do."""

    NET_NEW = "NetNew"
    UPDATE = "Update"
    DEPROVISION = "Deprovision"
    TRIAL_CREATE = "TrialCreate"
    TRIAL_CONVERT = "TrialConvert"
    CHANGE_PRODUCT = "ChangeProduct"
    PARTNER_ENROLLMENT = "PartnerEnrollment"
    RENEWAL = "Renewal"

    @property
    def snake(self) -> str:
        """``NetNew`` → ``net_new``: the adapter method and task suffix."""
        out = [self.value[0].lower()]
        for char in self.value[1:]:
            out.append(f"_{char.lower()}" if char.isupper() else char)
        return "".join(out)


class BillingTerm(StrEnum):
    """ProvisionRequest.billingTerm."""

    TWO_YEAR = "2 Year"
    THREE_YEAR = "3 Year"
    ACTIVATION = "Activation"
    ANNUAL = "Annual"
    MONTHLY = "Monthly"
    ONE_TIME = "One-Time"
    TRIAL = "Trial"


class AttemptStatus(StrEnum):
    """ProvisionAttempt.status as Pax8 uses it (the schema leaves it a free string)."""

    ISSUED = "Issued"
    ACKNOWLEDGED = "Acknowledged"
    FAILED = "Failed"


class ResultStatus(StrEnum):
    """ProvisionResult.status."""

    SUCCESS = "Success"
    FAIL = "Fail"


class UnitOfMeasure(StrEnum):
    """VolumeCommitment.unitOfMeasure."""

    AGENTS = "Agents"
    DEVICES = "Devices"
    ENDPOINTS = "Endpoints"
    ENVIRONMENTS = "Environments"
    LEVELS = "Levels"
    POINTS = "Points"
    USERS = "Users"
    AUD = "AUD"
    CAD = "CAD"
    CHF = "CHF"
    DKK = "DKK"
    EUR = "EUR"
    GBP = "GBP"
    IDR = "IDR"
    MYR = "MYR"
    NOK = "NOK"
    NZD = "NZD"
    PHP = "PHP"
    SEK = "SEK"
    SGD = "SGD"
    THB = "THB"
    USD = "USD"
    VND = "VND"


class Pax8Model(BaseModel):
    """Base: camelCase on the wire, unknown fields kept, snake_case names accepted too."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", use_enum_values=False
    )


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready camelCase dict Pax8 expects (unset fields left out)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- building blocks -------------------------------------------------------------------


class Address(Pax8Model):
    """A postal address of a partner or company."""

    street: str | None = None
    street2: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None
    state_or_province: str | None = None


class CommitmentTerm(Pax8Model):
    """The term part of a commitment."""

    months: int | None = None
    end_date: datetime | None = None


class VolumeCommitment(Pax8Model):
    """A volume commitment (minAmount < maxAmount when both are given)."""

    min_amount: float | None = None
    max_amount: float | None = None
    # A free string on read: a unit Pax8 adds later must not fail a whole order.
    unit_of_measure: str | None = None
    months: int | None = None


class Commitment(Pax8Model):
    """Term and volume commitments of a subscription."""

    term: CommitmentTerm | None = None
    volume: VolumeCommitment | None = None


# -- provisioning objects --------------------------------------------------------------


class ProvisionRequest(Pax8Model):
    """What Pax8 asks the vendor to do for one subscription, partner and company."""

    id: str
    partner_id: str | None = None
    partner_name: str | None = None
    partner_domain: str | None = None
    partner_address: Address | None = None
    partner_enrollment_id: str | None = None
    company_id: str | None = None
    company_name: str | None = None
    # Pax8's own examples spell it ``compayDomain``; read both, write the right one.
    company_domain: str | None = Field(
        None,
        validation_alias=AliasChoices("companyDomain", "compayDomain", "company_domain"),
        serialization_alias="companyDomain",
    )
    company_address: Address | None = None
    product_id: str | None = None
    old_product_id: str | None = None
    product_name: str | None = None
    quantity: int | None = None
    subscription_id: str | None = None
    # A type Pax8 adds later is kept as a string so the order is recorded, not rejected;
    # left to right, so a known type is the enum (smart mode would keep every one a str).
    type: RequestType | str | None = Field(None, union_mode="left_to_right")
    created_date: datetime | None = None
    trial_end_date: datetime | None = None
    trial_auto_converts: bool | None = None
    commitment_term_months: int | None = Field(None, description="Deprecated by Pax8.")
    commitment_term_end_date: datetime | None = Field(None, description="Deprecated by Pax8.")
    commitment: Commitment | None = None
    billing_term: BillingTerm | str | None = Field(None, union_mode="left_to_right")

    @property
    def request_type(self) -> RequestType | None:
        """The type as the enum, or None when absent or unknown to this version."""
        try:
            return RequestType(self.type) if self.type is not None else None
        except ValueError:
            return None

    @property
    def term_months(self) -> int | None:
        """Commitment months from ``commitment.term`` or the deprecated field."""
        if self.commitment and self.commitment.term and self.commitment.term.months:
            return self.commitment.term.months
        return self.commitment_term_months


class ProvisionDetail(Pax8Model):
    """What the user entered at checkout, at one moment (immutable; may be superseded)."""

    id: str
    provision_request_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    created_date: datetime | None = None


class ProvisionAttempt(Pax8Model):
    """One delivery of a request's detail to the vendor's webhook."""

    id: str
    provision_detail_id: str | None = None
    webhook_id: str | None = None
    status: str | None = None
    error_detail: str | None = None
    created_date: datetime | None = None


class ProvisionResult(Pax8Model):
    """The vendor's outcome for one attempt, as Pax8 validates it."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", str_strip_whitespace=False
    )

    id: str | None = None
    provision_attempt_id: str | None = None
    status: ResultStatus
    error_message: Annotated[str, StringConstraints(max_length=ERROR_MESSAGE_MAX)] | None = None
    metadata: dict[str, Any] | None = None
    external_provisioner_subscription_id: ExternalId | None = None
    external_provisioner_partner_id: ExternalId | None = None
    external_provisioner_company_id: ExternalId | None = None
    external_provisioner_partner_enrollment_id: ExternalId | None = None

    @classmethod
    def fail(cls, attempt_id: str, message: str, **fields: Any) -> ProvisionResult:
        """A Fail result; the message is cut to Pax8's 500 characters."""
        text = message.strip() or "The vendor could not provision this order."
        if len(text) > ERROR_MESSAGE_MAX:
            text = text[: ERROR_MESSAGE_MAX - 1] + "…"
        return cls(
            provision_attempt_id=attempt_id, status=ResultStatus.FAIL, error_message=text, **fields
        )


class ProvisionNotification(Pax8Model):
    """The Provision Notification webhook body."""

    is_simulation: bool = False
    provision_request: ProvisionRequest
    provision_detail: ProvisionDetail
    provision_attempt: ProvisionAttempt


class ProvisionTestingOrderEvent(Pax8Model):
    """Answer of ``POST /provision-simulations/order-events`` (its body is a partial dict)."""

    provision_request: ProvisionRequest | None = None
    provision_detail: ProvisionDetail | None = None
    provision_attempt: ProvisionAttempt | None = None
    is_simulation: bool | None = None


# -- provisioners and webhooks ---------------------------------------------------------


class Provisioner(Pax8Model):
    """The vendor's provisioner identity (one per credential set)."""

    id: str | None = None
    created_date: datetime | None = None
    vendor_id: str
    name: str


class SharedSecretCreate(Pax8Model):
    """The header Pax8 should put the generated credential in."""

    header: str | None = None


class WebhookCreate(Pax8Model):
    """Body of a webhook configuration create call."""

    url: str
    shared_secret: SharedSecretCreate | None = None


class CreatedSharedSecret(Pax8Model):
    """The generated credential: shown once, at creation."""

    header: str
    credential: str


class CreatedWebhook(Pax8Model):
    """Answer of a webhook configuration create call, with the credential."""

    id: str | None = None
    url: str
    shared_secret: CreatedSharedSecret
    created_date: datetime


class SharedSecret(Pax8Model):
    """A configured shared secret as listed later (credential masked by Pax8)."""

    header: str | None = None
    credential: str


class Webhook(Pax8Model):
    """An immutable webhook configuration."""

    id: str | None = None
    url: str
    shared_secret: SharedSecret
    created_date: datetime


# -- pages -----------------------------------------------------------------------------


class PageInfo(Pax8Model):
    """Paging of a list answer; page numbers start at 0."""

    size: int
    total_elements: int
    total_pages: int
    number: int


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(Pax8Model, Generic[ItemT]):
    """One page of a list answer (Pax8's PageDTO* schemas)."""

    content: list[ItemT]
    page: PageInfo
