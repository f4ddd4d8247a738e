"""Orders: a partial ProvisionTestingOrderEvent in, a complete ProvisionRequest out.

Pax8's order-events endpoint (and the sandbox's own ``/sandbox/orders``) accept any part of
a ProvisionTestingOrderEvent and fill in the rest with the defaults documented in
``pax8-integration-testing.txt``: random UUIDs for every id, quantity 1, type NetNew, the
example partner and company, commitment term 1–36 months, billing term Monthly, created now.

:func:`parse_order` validates the partial order once (a 400 names the field);
:meth:`OrderTemplate.build_request` then makes as many complete requests as needed, each with
fresh ids, which is what makes bulk creation cheap.
"""

import random
import uuid
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.errors import invalid

REQUEST_TYPES = (
    "NetNew",
    "Update",
    "Deprovision",
    "TrialCreate",
    "TrialConvert",
    "ChangeProduct",
    "PartnerEnrollment",
    "Renewal",
)
BILLING_TERMS = ("2 Year", "3 Year", "Activation", "Annual", "Monthly", "One-Time", "Trial")
UNITS_OF_MEASURE = (
    "Agents", "Devices", "Endpoints", "Environments", "Levels", "Points", "Users", "AUD",
    "CAD", "CHF", "DKK", "EUR", "GBP", "IDR", "MYR", "NOK", "NZD", "PHP", "SEK", "SGD", "THB",
    "USD", "VND",
)  # fmt: skip

PARTNER_ADDRESS = {
    "street": "123 Partner Ave.",
    "street2": "Unit b",
    "city": "Denver",
    "postcode": "80210",
    "country": "US",
    "stateOrProvince": "CO",
}
COMPANY_ADDRESS = {
    "street": "123 Company Ave.",
    "street2": "Unit c",
    "city": "Denver",
    "postcode": "80210",
    "country": "US",
    "stateOrProvince": "CO",
}
DEFAULT_TEXT = {
    "partnerName": "Example Partner Name",
    "partnerDomain": "example.com",
    "companyName": "Example Company Name",
    "companyDomain": "example.com",
    "productName": "Product ABC",
}

# ProvisionRequest fields in the order Pax8 writes them; ids are UUIDs.
_GENERATED_IDS = ("partnerId", "partnerEnrollmentId", "companyId", "productId", "subscriptionId")
_UUID_FIELDS = ("id", "oldProductId", *_GENERATED_IDS)
_TEXT_FIELDS = tuple(DEFAULT_TEXT)
_DATE_FIELDS = ("createdDate", "trialEndDate", "commitmentTermEndDate")
_ADDRESS_KEYS = tuple(PARTNER_ADDRESS)
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def now_iso() -> str:
    """The current UTC time as Pax8 writes it: ``2025-08-05T20:01:22.600597Z``."""
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    """``moment`` (UTC) in Pax8's date-time format."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, clamping the day (Jan 31 + 1 = Feb 28/29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    if not 1 <= year <= 9999:
        return moment
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def new_id() -> str:
    """A random UUID as a string."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class OrderTemplate:
    """A validated partial order: what was given, to be completed per order."""

    request: dict[str, Any] = field(default_factory=dict)
    """Given ProvisionRequest fields, validated and normalized (``compayDomain`` renamed)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Given ``provisionDetail.details``."""
    detail_id: str | None = None
    """A fixed ``provisionDetail.id``, if given."""

    @property
    def fixed_ids(self) -> list[str]:
        """The given ids that must be unique per order (so they forbid ``count > 1``)."""
        names = []
        if "id" in self.request:
            names.append("provisionRequest.id")
        if self.detail_id is not None:
            names.append("provisionDetail.id")
        return names

    def build_request(self, now: datetime | None = None) -> dict[str, Any]:
        """A complete ProvisionRequest: the given fields, defaults and fresh ids for the rest."""
        moment = now or datetime.now(UTC)
        given = self.request
        out: dict[str, Any] = {"id": given.get("id") or new_id()}
        out["partnerId"] = given.get("partnerId") or new_id()
        out["partnerName"] = given.get("partnerName", DEFAULT_TEXT["partnerName"])
        out["partnerDomain"] = given.get("partnerDomain", DEFAULT_TEXT["partnerDomain"])
        out["partnerAddress"] = dict(given.get("partnerAddress", PARTNER_ADDRESS))
        out["partnerEnrollmentId"] = given.get("partnerEnrollmentId") or new_id()
        out["companyId"] = given.get("companyId") or new_id()
        out["companyName"] = given.get("companyName", DEFAULT_TEXT["companyName"])
        out["companyDomain"] = given.get("companyDomain", DEFAULT_TEXT["companyDomain"])
        out["companyAddress"] = dict(given.get("companyAddress", COMPANY_ADDRESS))
        out["productId"] = given.get("productId") or new_id()
        if "oldProductId" in given:
            out["oldProductId"] = given["oldProductId"]
        out["productName"] = given.get("productName", DEFAULT_TEXT["productName"])
        out["quantity"] = given.get("quantity", 1)
        out["subscriptionId"] = given.get("subscriptionId") or new_id()
        out["type"] = given.get("type", "NetNew")
        out["createdDate"] = given.get("createdDate") or iso(moment)
        for name in ("trialEndDate", "trialAutoConverts"):
            if name in given:
                out[name] = given[name]
        commitment = _commitment(given, moment)
        out["commitmentTermMonths"] = commitment["term"]["months"]
        out["commitmentTermEndDate"] = commitment["term"]["endDate"]
        out["commitment"] = commitment
        out["billingTerm"] = given.get("billingTerm", "Monthly")
        return out


def _commitment(given: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """``commitment`` and its deprecated twins agree; whatever is missing is generated."""
    commitment = given.get("commitment", {})
    term = commitment.get("term", {})
    months = term.get("months", given.get("commitmentTermMonths"))
    if months is None:
        months = random.randint(1, 36)
    end = term.get("endDate") or given.get("commitmentTermEndDate")
    if end is None:
        end = iso(add_months(moment, months))
    volume = commitment.get("volume")
    if volume is None:
        volume = {"minAmount": 1, "maxAmount": 10, "unitOfMeasure": "Users", "months": months}
    return {"term": {"months": months, "endDate": end}, "volume": dict(volume)}


def for_products(template: OrderTemplate, products: Any, count: int) -> list[OrderTemplate]:
    """``count`` templates taking the productIds of ``products`` in turn (a vendor whose
    products go to different backends); ``[template] * count`` when ``products`` is None.
    A 400 names a bad entry."""
    if products is None:
        return [template] * count
    _need(isinstance(products, list) and bool(products), "products", "must be a list of UUIDs")
    ids = [_uuid(value, f"products.{index}") for index, value in enumerate(products)]
    return [
        OrderTemplate(
            {**template.request, "productId": ids[number % len(ids)]},
            template.details,
            template.detail_id,
        )  # fmt: skip
        for number in range(count)
    ]


def parse_order(body: Any, prefix: str = "") -> OrderTemplate:
    """Validate a partial ProvisionTestingOrderEvent; a 400 names the first bad field.

    ``provisionAttempt`` is ignored: the attempt is always made by the sandbox. Unknown
    fields are ignored, as a tolerant JSON reader would.
    """
    if body is None:
        return OrderTemplate()
    _need(isinstance(body, dict), prefix.rstrip(".") or "body", "must be a JSON object")
    request = _optional_object(body, "provisionRequest", prefix)
    detail = _optional_object(body, "provisionDetail", prefix)
    details = _optional_object(detail, "details", f"{prefix}provisionDetail.")
    detail_id = detail.get("id")
    if detail_id is not None:
        detail_id = _uuid(detail_id, f"{prefix}provisionDetail.id")
    return OrderTemplate(_parse_request(request, f"{prefix}provisionRequest."), details, detail_id)


def _parse_request(given: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if given.get("companyDomain") is None and given.get("compayDomain") is not None:
        # Pax8's own examples spell it "compayDomain"; accept both, answer the schema's name.
        given = {**given, "companyDomain": given["compayDomain"]}
    for name in _UUID_FIELDS:
        if given.get(name) is not None:
            out[name] = _uuid(given[name], prefix + name)
    for name in _TEXT_FIELDS:
        if given.get(name) is not None:
            _need(isinstance(given[name], str), prefix + name, "must be a string")
            out[name] = given[name]
    for name in _DATE_FIELDS:
        if given.get(name) is not None:
            out[name] = _date(given[name], prefix + name)
    for name in ("partnerAddress", "companyAddress"):
        if given.get(name) is not None:
            out[name] = _address(given[name], prefix + name)
    if given.get("quantity") is not None:
        out["quantity"] = _int(given["quantity"], prefix + "quantity", _INT64)
    if given.get("commitmentTermMonths") is not None:
        out["commitmentTermMonths"] = _int(
            given["commitmentTermMonths"], prefix + "commitmentTermMonths", _INT32
        )
    if given.get("type") is not None:
        out["type"] = _choice(given["type"], prefix + "type", REQUEST_TYPES)
    if given.get("billingTerm") is not None:
        out["billingTerm"] = _choice(given["billingTerm"], prefix + "billingTerm", BILLING_TERMS)
    if given.get("trialAutoConverts") is not None:
        out["trialAutoConverts"] = _boolean(
            given["trialAutoConverts"], prefix + "trialAutoConverts"
        )
    if given.get("commitment") is not None:
        out["commitment"] = _parse_commitment(given["commitment"], prefix + "commitment")
    return out


def _parse_commitment(value: Any, name: str) -> dict[str, Any]:
    _need(isinstance(value, dict), name, "must be an object")
    out: dict[str, Any] = {}
    term = value.get("term")
    if term is not None:
        _need(isinstance(term, dict), f"{name}.term", "must be an object")
        out["term"] = {}
        if term.get("months") is not None:
            out["term"]["months"] = _int(term["months"], f"{name}.term.months", _INT32)
        if term.get("endDate") is not None:
            out["term"]["endDate"] = _date(term["endDate"], f"{name}.term.endDate")
    volume = value.get("volume")
    if volume is not None:
        _need(isinstance(volume, dict), f"{name}.volume", "must be an object")
        parsed: dict[str, Any] = {}
        for key in ("minAmount", "maxAmount"):
            if volume.get(key) is not None:
                amount = volume[key]
                _need(
                    isinstance(amount, int | float) and not isinstance(amount, bool),
                    f"{name}.volume.{key}",
                    "must be a number",
                )
                parsed[key] = amount
        if "minAmount" in parsed and "maxAmount" in parsed:
            _need(
                parsed["minAmount"] < parsed["maxAmount"],
                f"{name}.volume.minAmount",
                "must be less than maxAmount",
            )
        if volume.get("unitOfMeasure") is not None:
            parsed["unitOfMeasure"] = _choice(
                volume["unitOfMeasure"], f"{name}.volume.unitOfMeasure", UNITS_OF_MEASURE
            )
        if volume.get("months") is not None:
            parsed["months"] = _int(volume["months"], f"{name}.volume.months", _INT32)
        out["volume"] = parsed
    return out


def _need(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise invalid(name, message)


def _optional_object(parent: dict[str, Any], key: str, prefix: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    _need(isinstance(value, dict), prefix + key, "must be an object")
    return dict(value)


def _uuid(value: Any, name: str) -> str:
    _need(isinstance(value, str), name, "must be a UUID string")
    try:
        # Canonical lower-case form, as a Java UUID prints itself.
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid(name, f"must be a UUID, got {value!r}") from None


def _date(value: Any, name: str) -> str:
    _need(isinstance(value, str), name, "must be an ISO 8601 date-time string")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise invalid(name, f"must be an ISO 8601 date-time, got {value!r}") from None
    return str(value)


def _int(value: Any, name: str, bounds: tuple[int, int]) -> int:
    _need(isinstance(value, int) and not isinstance(value, bool), name, "must be an integer")
    _need(bounds[0] <= value <= bounds[1], name, "is out of range")
    return int(value)


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    _need(value in allowed, name, f"must be one of {', '.join(allowed)}")
    return str(value)


def _boolean(value: Any, name: str) -> bool:
    # Pax8's own example sends "true" as a string; a Java reader coerces it.
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    _need(isinstance(value, bool), name, "must be a boolean")
    return bool(value)


def _address(value: Any, name: str) -> dict[str, str]:
    _need(isinstance(value, dict), name, "must be an object")
    out: dict[str, str] = {}
    for key in _ADDRESS_KEYS:
        if value.get(key) is not None:
            _need(isinstance(value[key], str), f"{name}.{key}", "must be a string")
            out[key] = value[key]
    return out
