"""The CloudBlue part of an :class:`~vendors.base.Order`: the operation and the typed payload.

CloudBlue Commerce (PLM, products fulfilled internally) calls a product line's "request
URL" once per subscription operation with a ``ProvisioningRequestPayload`` (CBC 21 PLM
types: ``ProvisioningRequestPayload``, ``RequestUrlTenant``, ``RequestUrlProduct``,
``ExternalMetadataParamValue``). The models here follow those types field by field, camelCase
on the wire, unknown fields kept; the strict scalar types (a ``limit`` of ``"5"`` is refused)
make a malformed payload a 400 that names the field instead of a surprise in an adapter.

An adapter reads ``order.cloudblue`` (``None`` for a Pax8 order): the :class:`Operation`,
every product with its MPN, resource type and limit, ``plannedDate``, and both
``vendorSubscriptionId``s (the top-level one and the one in ``tenant``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)
from pydantic.alias_generators import to_camel


class Operation(StrEnum):
    """A subscription operation of a CloudBlue product line (PLM's six)."""

    CREATION = "creation"
    STOPPING = "stopping"
    STARTING = "starting"
    RENEWAL = "renewal"
    LIMIT_CHANGE = "limit-change"
    REMOVAL = "removal"


class CloudBlueModel(BaseModel):
    """Base: camelCase on the wire, snake_case names accepted too, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )


Scalar = StrictStr | StrictBool | StrictInt | StrictFloat


class ParamValue(CloudBlueModel):
    """``ExternalMetadataParamValue``: one activation or fulfillment parameter."""

    key: StrictStr | None = None
    # The type says string; a number or a boolean is kept as it came rather than refused.
    value: Scalar | None = None
    structured_value: dict[str, Any] | None = None


class Tenant(CloudBlueModel):
    """``RequestUrlTenant``: the tenant's parameters and the vendor's subscription id."""

    activation_parameters: list[ParamValue] = Field(default_factory=list)
    fulfillment_parameters: list[ParamValue] = Field(default_factory=list)
    vendor_subscription_id: StrictStr | None = None

    def parameters(self) -> dict[str, Any]:
        """Activation then fulfillment parameters, ``key`` → structured value or value."""
        out: dict[str, Any] = {}
        for item in (*self.activation_parameters, *self.fulfillment_parameters):
            if item.key:
                out[item.key] = (
                    item.structured_value if item.structured_value is not None else item.value
                )
        return out


class Product(CloudBlueModel):
    """``RequestUrlProduct``: one product (resource) of the subscription and its limit."""

    name: dict[str, StrictStr] | None = None
    """An ``MLString``: locale (``en_US``…) → text."""
    mpn: StrictStr | None = None
    resource_type_id: StrictInt | None = None
    limit: StrictInt | None = None

    @property
    def label(self) -> str:
        """How to name this product to a person: its MPN, resource type or English name."""
        if self.mpn:
            return self.mpn
        if self.resource_type_id is not None:
            return f"resource type {self.resource_type_id}"
        return (self.name or {}).get("en_US") or "a product without MPN"

    def to_json(self) -> dict[str, Any]:
        """The product as the ``http`` adapter sends it."""
        return {
            "mpn": self.mpn,
            "resourceTypeId": self.resource_type_id,
            "limit": self.limit,
            "name": self.name,
        }


class ProvisioningRequestPayload(CloudBlueModel):
    """``ProvisioningRequestPayload``: what PLM posts to the request URL.

    ``operation`` is required by the type but may come from the URL suffix instead; ids
    may be numbers (kept as text once checked, see ``fulfillment.cloudblue.calls``).
    """

    request_id: StrictStr | StrictInt | None = None
    operation: StrictStr | None = None
    tenant_id: StrictStr | StrictInt
    tenant: Tenant
    customer: dict[str, Any] | None = None
    reseller: dict[str, Any] | None = None
    products: list[Product] = Field(min_length=1)
    subscription_id: StrictStr | StrictInt
    subscription_numeric_id: StrictInt | None = None
    subscription_period: StrictInt | None = None
    subscription_period_type: StrictStr | None = None
    billing_period_type: StrictStr | None = None
    billing_period: StrictInt | None = None
    period_trial: StrictBool | None = None
    planned_date: StrictStr | None = None
    vendor_subscription_id: StrictStr | None = None


class CloudBlueOrder(BaseModel):
    """What an adapter knows of a CloudBlue call beyond the Pax8-shaped request."""

    model_config = ConfigDict(frozen=True)

    operation: Operation
    payload: ProvisioningRequestPayload

    @property
    def products(self) -> list[Product]:
        """Every product of the call, in the platform's order (a limit change may touch
        several resources)."""
        return list(self.payload.products)

    @property
    def subscription_id(self) -> str:
        """CloudBlue's subscription id (UID)."""
        return str(self.payload.subscription_id)

    @property
    def request_id(self) -> str | None:
        """CloudBlue's ``requestId``, when it sent one."""
        value = self.payload.request_id
        return None if value is None else str(value)

    @property
    def planned_date(self) -> str | None:
        """``plannedDate``: when the platform plans the operation (as it sent it)."""
        return self.payload.planned_date

    @property
    def vendor_subscription_id(self) -> str | None:
        """The vendor's subscription id the platform sent at the top level."""
        return self.payload.vendor_subscription_id

    @property
    def tenant_vendor_subscription_id(self) -> str | None:
        """The vendor's subscription id the platform sent in ``tenant``."""
        return self.payload.tenant.vendor_subscription_id

    @property
    def known_vendor_subscription_id(self) -> str | None:
        """The vendor's subscription id from either place (top level first)."""
        return self.vendor_subscription_id or self.tenant_vendor_subscription_id

    @property
    def parameters(self) -> dict[str, Any]:
        """The tenant's activation and fulfillment parameters, ``key`` → value."""
        return self.payload.tenant.parameters()

    def to_json(self) -> dict[str, Any]:
        """The CloudBlue part of the order JSON the ``http`` adapter sends."""
        payload = self.payload
        return {
            "operation": self.operation.value,
            "requestId": self.request_id,
            "subscriptionId": self.subscription_id,
            "subscriptionNumericId": payload.subscription_numeric_id,
            "tenantId": str(payload.tenant_id),
            "vendorSubscriptionId": self.vendor_subscription_id,
            "tenantVendorSubscriptionId": self.tenant_vendor_subscription_id,
            "plannedDate": self.planned_date,
            "periodTrial": payload.period_trial,
            "subscriptionPeriod": payload.subscription_period,
            "subscriptionPeriodType": payload.subscription_period_type,
            "billingPeriod": payload.billing_period,
            "billingPeriodType": payload.billing_period_type,
            "products": [product.to_json() for product in self.products],
            "parameters": self.parameters,
        }
