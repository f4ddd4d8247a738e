"""The vendor adapter interface: one method per Pax8 request type, plus suspend and resume.

A vendor writes a subclass of :class:`VendorAdapter` (or uses the built-in ``example``
or ``http`` adapters). Each method receives one :class:`Order` and either returns a
:class:`Provisioned` (optionally with external ids and metadata for Pax8) or raises a
:class:`~vendors.errors.PermanentVendorError` / :class:`~vendors.errors.TransientVendorError`.

CloudBlue orders go through the same methods (creation → ``net_new`` or ``trial_create``,
limit change → ``update``, renewal → ``renewal``, removal → ``deprovision``), except that
stopping and starting a subscription, which Pax8 has no type for, call :meth:`suspend` and
:meth:`resume`; ``order.cloudblue`` carries the typed payload (products, plannedDate, the
vendor subscription ids).

Methods run at most once per (provision request, detail) as far as this worker can
tell; a call repeated after a crash carries the same :attr:`Order.idempotency_key`, so a
vendor that honours it never provisions twice. A call is not repeated before
:attr:`VendorAdapter.call_deadline_seconds` have passed since it started, so a repeat never
meets the first call still running at the vendor (where a key stored only when the first
call finishes would not yet protect it).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from config.routes import Backend
from config.settings import Settings
from pax8.models import (
    ProvisionAttempt,
    ProvisionDetail,
    ProvisionRequest,
    RequestType,
    to_wire,
)
from vendors.cloudblue import CloudBlueOrder, Operation
from vendors.errors import PermanentVendorError
from vendors.usage import UsageNotReported, UsageQuery

if TYPE_CHECKING:
    from pax8.usage import UsageLine

Source = Literal["pax8", "cloudblue"]

_EXTERNAL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
MAX_METADATA_BYTES = 16 * 1024
"""The most metadata (as JSON) one result carries: the ledger keeps it with the order and
Pax8 is sent it; an adapter that returns more has a bug (the order is held, not cut)."""
_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c7a52-3f55-4f4e-9d8e-0b5b2f7f1a11")


def idempotency_key(source: str, request_id: str, detail_id: str, generation: int = 0) -> str:
    """The stable key of one (request, detail): the same on every repeat of the call.

    ``generation`` counts deliberate operator replays of a refused order: a replay is a
    new try, so it must not be answered from the vendor's idempotency store.
    """
    name = f"{source}:{request_id}:{detail_id}" + (f":{generation}" if generation else "")
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, name))


@dataclass(frozen=True)
class Order:
    """Everything known about one provision request at the moment it is provisioned."""

    type: RequestType
    request: ProvisionRequest
    detail: ProvisionDetail
    attempt: ProvisionAttempt | None
    is_simulation: bool
    raw: dict[str, Any] = field(repr=False)
    source: Source = "pax8"
    generation: int = 0
    cloudblue: CloudBlueOrder | None = None
    """The CloudBlue operation and typed payload (``None`` for a Pax8 order)."""
    route: str = ""
    """The route of the routes file that sent the order here (``""`` without a routes file)."""
    previous_route: str = ""
    """A ChangeProduct's previous route: the route of its old product (``oldProductId``),
    when a routes file names one. Another route than :attr:`route` means the subscription
    lives in another backend so far: ``docs/routes.md`` says what to do."""

    @property
    def request_id(self) -> str:
        """The provision request id."""
        return self.request.id

    @property
    def operation(self) -> str | None:
        """The CloudBlue operation (``creation``, ``stopping``…), or None for Pax8."""
        return self.cloudblue.operation.value if self.cloudblue else None

    @property
    def method(self) -> str:
        """The adapter method this order calls: the type's (``net_new``…), or ``suspend`` /
        ``resume`` for a CloudBlue stop / start."""
        if self.cloudblue is not None:
            if self.cloudblue.operation is Operation.STOPPING:
                return "suspend"
            if self.cloudblue.operation is Operation.STARTING:
                return "resume"
        return self.type.snake

    @property
    def detail_id(self) -> str:
        """The provision detail id this order was built from."""
        return self.detail.id

    @property
    def details(self) -> dict[str, Any]:
        """The checkout details (custom keys, and external ids Pax8 saved earlier)."""
        return self.detail.details

    @property
    def idempotency_key(self) -> str:
        """Stable per (request, detail): send it to the vendor to make repeats harmless."""
        return idempotency_key(self.source, self.request_id, self.detail_id, self.generation)

    def to_json(self) -> dict[str, Any]:
        """The normalized order as JSON (what the ``http`` adapter sends).

        ``action`` names the adapter method (``net_new`` … ``renewal``, ``suspend``,
        ``resume``): a CloudBlue stop or start is ``type`` Update with action ``suspend`` /
        ``resume``. ``cloudblue`` is ``null`` for a Pax8 order, else the operation and
        every field of the platform's payload that an adapter needs
        (:meth:`vendors.cloudblue.CloudBlueOrder.to_json`). ``route`` and
        ``previousRoute`` are there only with a routes file (without one the body is what
        it always was, so a call repeated across an upgrade keeps its Idempotency-Key's body).
        """
        routing = (
            {"route": self.route, "previousRoute": self.previous_route or None}
            if self.route
            else {}
        )
        return {
            "type": self.type.value,
            "action": self.method,
            "source": self.source,
            "operation": self.operation,
            "isSimulation": self.is_simulation,
            "idempotencyKey": self.idempotency_key,
            "provisionRequest": to_wire(self.request),
            "provisionDetail": to_wire(self.detail),
            "provisionAttempt": to_wire(self.attempt) if self.attempt else None,
            "cloudblue": self.cloudblue.to_json() if self.cloudblue else None,
            **routing,
        }


@dataclass(frozen=True)
class Provisioned:
    """A successful outcome: ids the vendor uses (saved by Pax8) and free metadata."""

    subscription_id: str | None = None
    partner_id: str | None = None
    company_id: str | None = None
    partner_enrollment_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        size = len(json.dumps(self.metadata, default=str))
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"metadata of {size} bytes is over the {MAX_METADATA_BYTES} a result may carry"
            )

    def external_ids(self) -> dict[str, str]:
        """The ids as ProvisionResult fields, checked against Pax8's pattern."""
        ids = {
            "externalProvisionerSubscriptionId": self.subscription_id,
            "externalProvisionerPartnerId": self.partner_id,
            "externalProvisionerCompanyId": self.company_id,
            "externalProvisionerPartnerEnrollmentId": self.partner_enrollment_id,
        }
        out: dict[str, str] = {}
        for name, value in ids.items():
            if value is None:
                continue
            if not _EXTERNAL_ID.match(str(value)):
                raise ValueError(
                    f"{name} {value!r} must be letters, digits, '-' or '_' (Pax8 rejects others)"
                )
            out[name] = str(value)
        return out


class VendorAdapter:
    """Base class of vendor adapters: override the methods for the types you sell.

    A method left alone refuses its type with a permanent error, so Pax8 gets a clear
    ``Fail`` rather than silence. Adapters are built once per worker process
    (``__init__`` takes the settings object), so keep clients and pools on ``self``.
    """

    name = "base"
    backend: Backend | None = None
    """The route and environment this instance serves, with the route's own settings
    (``options`` among them), when it was built by :meth:`for_backend`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    @classmethod
    def for_backend(cls, settings: Settings, backend: Backend) -> VendorAdapter:
        """The adapter of one route's backend (``config/routes.py``): ``cls(settings)`` with
        :attr:`backend` set. Override it when your adapter needs its route's settings
        (``backend.options``, ``backend.url``…) to start; the built-in ones do."""
        adapter = cls(settings)
        adapter.backend = backend
        return adapter

    @property
    def call_deadline_seconds(self) -> float | None:
        """How long one call may still be running after it starts, at the vendor too.

        After a crash mid-call the order waits this long (from the call's start) before it
        is called again. ``None`` means the task's hard limit (``TASK_TIME_LIMIT_SECONDS``):
        no call in the worker's process outlives it. Return how long your vendor may still
        be working on a call after it started: your client's total timeout when the vendor
        finishes within it, more when it may go on after your client gave up. A figure below
        the hard limit makes every crash wait less, but only one no call can outlast keeps a
        repeat from meeting the first call still running.
        """
        return None

    def handle(self, order: Order) -> Provisioned:
        """Dispatch ``order`` to the method for it (:attr:`Order.method`)."""
        method = getattr(self, order.method)
        result = method(order)
        if not isinstance(result, Provisioned):
            raise TypeError(
                f"{type(self).__name__}.{order.method} returned {type(result).__name__}, "
                "not Provisioned"
            )
        return result

    def _unsupported(self, order: Order) -> Provisioned:
        raise PermanentVendorError(
            f"This vendor does not support {order.type.value} orders; contact the vendor."
        )

    def net_new(self, order: Order) -> Provisioned:
        """A new subscription for a company."""
        return self._unsupported(order)

    def update(self, order: Order) -> Provisioned:
        """A quantity (or other) change on an existing subscription."""
        return self._unsupported(order)

    def deprovision(self, order: Order) -> Provisioned:
        """Cancel an existing subscription."""
        return self._unsupported(order)

    def trial_create(self, order: Order) -> Provisioned:
        """Start a trial subscription."""
        return self._unsupported(order)

    def trial_convert(self, order: Order) -> Provisioned:
        """Turn a trial into a paid subscription."""
        return self._unsupported(order)

    def change_product(self, order: Order) -> Provisioned:
        """Move a subscription to another product (``oldProductId`` → ``productId``)."""
        return self._unsupported(order)

    def partner_enrollment(self, order: Order) -> Provisioned:
        """Enroll a partner with the vendor."""
        return self._unsupported(order)

    def renewal(self, order: Order) -> Provisioned:
        """Renew a subscription's term."""
        return self._unsupported(order)

    def suspend(self, order: Order) -> Provisioned:
        """Stop (suspend) a subscription, keeping its data: CloudBlue's "stopping"."""
        raise PermanentVendorError(
            f"This vendor cannot stop subscriptions ({type(self).__name__} does not "
            "implement suspend); contact the vendor."
        )

    def resume(self, order: Order) -> Provisioned:
        """Start (resume) a stopped subscription: CloudBlue's "starting"."""
        raise PermanentVendorError(
            f"This vendor cannot start stopped subscriptions ({type(self).__name__} does not "
            "implement resume); contact the vendor."
        )

    def usage(self, query: UsageQuery) -> list[UsageLine]:
        """The usage source: the period's current totals for one subscription
        (:mod:`vendors.usage`; posted to Pax8 daily when ``USAGE_REPORTING`` is on)."""
        raise UsageNotReported(
            f"{type(self).__name__} has no usage source (implement usage() to report usage)"
        )

    def close(self) -> None:
        """Release clients and pools (called when the worker process ends)."""
