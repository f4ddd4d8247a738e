"""CloudBlue Commerce request-URL calls: the operation, the checked payload, the record it is.

PLM calls one base URL per product line and appends a suffix per operation (CBC 21,
"Managing Fulfillment Parameters for Internally Fulfilled Products"); the payload's
``operation`` names it too. Neither the suffixes nor the ``operation`` values are spelled
out in CloudBlue's documentation, so both are read tolerantly (:func:`operation_named`):
case, spaces, ``-``/``_`` and the word "subscription" are ignored, and every common name of
each of the six operations is known (``stop``, ``suspend``, ``stopping``…). A name outside
that set is logged, not refused, when the other source (suffix or body) says what it is.

Each operation reaches the adapter as the nearest Pax8 request type (creation → NetNew, or
TrialCreate with ``periodTrial``; limit change, stop and start → Update, stop and start
calling ``suspend``/``resume``; renewal → Renewal; removal → Deprovision).

Which ledger record a call is (:func:`record_id`):

* with a ``requestId``: (``subscriptionId``, operation, ``requestId``), so a retry of the
  same call is the same record and two operations never merge, even under one request id;
* without one: (``subscriptionId``, operation, the payload, and the call's place in the
  subscription's sequence of operations). An identical call with no other operation of the
  subscription in between is a retry (the same record); once another operation came, it is
  a new one: stop, start, stop are three records, a stop retried after a 503 is one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fulfillment.ledger.refs import is_id
from pax8.models import RequestType
from vendors.cloudblue import CloudBlueOrder, Operation, ProvisioningRequestPayload

_NAMES: dict[Operation, tuple[str, ...]] = {
    Operation.CREATION: ("create", "creation", "created", "setup", "provision", "purchase",
                         "new", "add"),
    Operation.STOPPING: ("stop", "stopping", "stopped", "suspend", "suspension", "suspended",
                         "hold", "pause", "disable"),
    Operation.STARTING: ("start", "starting", "started", "resume", "resuming", "resumed",
                         "resumption", "unhold", "unsuspend", "enable"),
    Operation.RENEWAL: ("renew", "renewal", "renewed", "renewing", "prolong", "prolongation",
                        "extend"),
    Operation.LIMIT_CHANGE: ("limitchange", "limitschange", "changelimit", "changelimits",
                             "limit", "limits", "updatelimits", "setlimits", "change",
                             "update", "upgrade", "downgrade", "modify", "resize"),
    Operation.REMOVAL: ("remove", "removal", "removed", "delete", "deletion", "destroy",
                        "cancel", "cancellation", "terminate", "termination", "deprovision"),
}  # fmt: skip
_OPERATIONS: dict[str, Operation] = {
    name: operation for operation, names in _NAMES.items() for name in names
}

REQUEST_TYPES: dict[Operation, RequestType] = {
    Operation.CREATION: RequestType.NET_NEW,
    Operation.STOPPING: RequestType.UPDATE,
    Operation.STARTING: RequestType.UPDATE,
    Operation.RENEWAL: RequestType.RENEWAL,
    Operation.LIMIT_CHANGE: RequestType.UPDATE,
    Operation.REMOVAL: RequestType.DEPROVISION,
}

KNOWN = "creation, stopping, starting, renewal, limit-change, removal"


class CloudBlueError(Exception):
    """The payload lacks what a request needs; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message


_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")
_NOISE = ("subscription", "subscriptions")


def normalize_operation(operation: str) -> str:
    """``"Limit Change"`` / ``limit_change`` / ``changeSubscriptionLimits`` → ``limitchange``
    / ``changelimits``: words joined in lower case, the word "subscription" left out."""
    words = [word.lower() for word in _WORDS.findall(operation)]
    text = "".join(word for word in words if word not in _NOISE)
    return text.removeprefix("subscription").removesuffix("subscription")


def operation_named(name: object) -> Operation | None:
    """The operation a suffix or an ``operation`` value names, or None if it is new to us."""
    if isinstance(name, Operation):
        return name
    if not isinstance(name, str):
        return None
    return _OPERATIONS.get(normalize_operation(name))


def request_type_for(operation: Operation | str, trial: bool = False) -> RequestType:
    """The Pax8 request type of a CloudBlue operation (TrialCreate for a trial creation)."""
    known = operation_named(operation)
    if known is None:
        raise CloudBlueError("operation", f"not a known operation ({KNOWN})")
    kind = REQUEST_TYPES[known]
    if kind is RequestType.NET_NEW and trial:
        return RequestType.TRIAL_CREATE
    return kind


def printable(value: object) -> str:
    """An outside name (a suffix, an ``operation`` value) fit for a log line: shown only
    when it is short plain text, so nothing from outside forges a line or a terminal."""
    if isinstance(value, str) and 0 < len(value) <= 64:
        if all(char.isalnum() or char in " ._-" for char in value) and value.isascii():
            return repr(value)
    return "(a value with unexpected characters, not shown)"


@dataclass(frozen=True)
class CloudBlueCall:
    """One checked request-URL call: the typed order, its type and what to store."""

    order: CloudBlueOrder
    data: dict[str, Any]
    request_type: RequestType
    new_name: str | None = None
    """The suffix or ``operation`` value this version did not know (logged, not refused)."""

    @property
    def operation(self) -> Operation:
        """The operation the call asks for."""
        return self.order.operation

    @property
    def fingerprint(self) -> str:
        """The operation and the whole payload, hashed: equal for a byte-identical retry."""
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{self.operation}\n{canonical}".encode()).hexdigest()

    @property
    def payload(self) -> str:
        """What the ledger keeps: the resolved operation and the platform's payload as sent
        (the operation may have come from the URL suffix, not the body)."""
        return json.dumps(
            {"operation": self.operation.value, "request": self.data}, separators=(",", ":")
        )


def _required(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None or value == "":
        raise CloudBlueError(name, "missing or empty")
    return value


def _id(value: Any, field: str) -> str:
    """An id (numbers are CloudBlue's usual form) as text, checked like every outside id."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not is_id(text):
        raise CloudBlueError(
            field, "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return str(text)


def _operation(data: dict[str, Any], suffix: Operation | None) -> tuple[Operation, str | None]:
    """The call's operation from the URL suffix and the body; and a name that was new."""
    stated = data.get("operation")
    if stated is not None and not isinstance(stated, str):
        raise CloudBlueError("operation", "must be a string")
    named = operation_named(stated) if stated else None
    if suffix is None:
        if not stated:
            raise CloudBlueError("operation", "missing or empty")
        if named is None:
            raise CloudBlueError("operation", f"not a known operation ({KNOWN})")
        return named, None
    if named is not None and named is not suffix:
        raise CloudBlueError(
            "operation",
            f"the URL is for {suffix.value} but the body's operation is {named.value}",
        )
    return suffix, (stated if stated and named is None else None)


def parse_call(data: dict[str, Any], suffix: Operation | None = None) -> CloudBlueCall:
    """Check a ``ProvisioningRequestPayload`` (``suffix``: the operation the URL names).

    Raises :class:`CloudBlueError` naming the field (``products.1.limit``,
    ``tenant.vendorSubscriptionId``…) for what is missing, of the wrong type, or an id
    outside the pattern; the value itself is never echoed.
    """
    operation, new_name = _operation(data, suffix)
    _required(data, "subscriptionId")
    _required(data, "tenantId")
    tenant = _required(data, "tenant")
    if not isinstance(tenant, dict):
        raise CloudBlueError("tenant", "must be an object")
    products = _required(data, "products")
    if not isinstance(products, list) or not products:
        raise CloudBlueError("products", "must be a non-empty list")
    try:
        payload = ProvisioningRequestPayload.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"] if not _is_union_branch(part))
        raise CloudBlueError(where or "body", str(error["msg"])) from None
    _id(payload.subscription_id, "subscriptionId")
    _id(payload.tenant_id, "tenantId")
    for value, field in (
        (payload.request_id, "requestId"),
        (payload.vendor_subscription_id, "vendorSubscriptionId"),
        (payload.tenant.vendor_subscription_id, "tenant.vendorSubscriptionId"),
    ):
        if value is not None and value != "":
            _id(value, field)
    order = CloudBlueOrder(operation=operation, payload=payload)
    kind = request_type_for(operation, bool(payload.period_trial))
    return CloudBlueCall(order=order, data=data, request_type=kind, new_name=new_name)


def _is_union_branch(part: object) -> bool:
    # pydantic names the union member that failed ("str", "int") inside the location.
    return part in {"str", "int", "bool", "float"}


def mpns_of(order: CloudBlueOrder) -> tuple[str, ...]:
    """What a CloudBlue call is routed by: the MPNs of its products (those without one do not
    count), each once, in the call's order."""
    return tuple(dict.fromkeys(product.mpn for product in order.products if product.mpn))


def stored_request(payload: str) -> tuple[Operation | None, dict[str, Any]]:
    """The operation and the platform's payload of a ledger record (see
    :attr:`CloudBlueCall.payload`); a record of 0.1 kept the payload alone."""
    data = json.loads(payload)
    if set(data) == {"operation", "request"} and isinstance(data["request"], dict):
        return operation_named(data["operation"]), data["request"]
    return None, data


def stored_order(payload: str) -> CloudBlueOrder:
    """The typed order of a ledger record's payload."""
    operation, data = stored_request(payload)
    return parse_call(data, operation).order


# -- which record a call is ---------------------------------------------------------------


def record_id(order: CloudBlueOrder, fingerprint: str, occurrence: int) -> str:
    """The ledger id of a call (see the module docstring): ``cb-`` and 32 hex digits.

    ``occurrence`` is the call's place in its subscription's sequence of operations
    (:meth:`fulfillment.ledger.Ledger.cloudblue_occurrence`); it counts only without a
    ``requestId``.
    """
    request = order.request_id
    if request:
        seed = f"request\n{order.subscription_id}\n{order.operation}\n{request}"
    else:
        seed = f"sequence\n{order.subscription_id}\n{order.operation}\n{fingerprint}\n{occurrence}"
    return "cb-" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def detail_id(request_id: str) -> str:
    """The one detail of a CloudBlue record: fixed per record, so a changed payload under
    the same key never counts as a new detail (which would provision again)."""
    return "cbd-" + hashlib.sha256(request_id.encode()).hexdigest()[:24]
