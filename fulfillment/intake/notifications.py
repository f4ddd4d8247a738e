"""Parse a Pax8 Provision Notification webhook into a Notice (CloudBlue's calls: ``cloudblue/``).

Tolerant of what Pax8 sends loosely (unknown fields, ``compayDomain``, deprecated
fields, non-UUID ids), strict about what the worker cannot do without: a request id, an
attempt id, a detail id and a known type. Every id is checked against
:data:`fulfillment.ledger.refs.ID_PATTERN` before it becomes a key, a path or a log field. Errors
name the field, in the wire's camelCase, so a 400 tells the sender exactly what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from fulfillment.ledger import Notice
from fulfillment.ledger.refs import InvalidId, check_id
from pax8.models import ProvisionNotification, ProvisionRequest, RequestType


class InvalidNotification(Exception):
    """The body cannot be accepted; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


MAX_DEPTH = 32
"""How deep a body may nest (Pax8's notifications nest 4 levels): deeper is refused before
anything else walks it, so no recursion limit is reached later (pydantic, the JSON dump)."""


def load_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`InvalidNotification` naming ``body``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: CPython's decoder refuses ~1,000 levels; ValueError also covers
        # integers past Python's 4,300-digit limit.
        raise InvalidNotification("body", f"not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(data, dict):
        raise InvalidNotification("body", "must be a JSON object")
    if _too_deep(data, MAX_DEPTH):
        raise InvalidNotification("body", f"nested deeper than {MAX_DEPTH} levels")
    return data


def _too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests deeper than ``limit`` (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _required_id(data: dict[str, Any], section: str, name: str = "id") -> str:
    part = data.get(section)
    if not isinstance(part, dict):
        raise InvalidNotification(section, "missing or not an object")
    value = part.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidNotification(f"{section}.{name}", "missing or empty")
    return _checked(value, f"{section}.{name}")


def _checked(value: Any, field: str) -> str:
    """``value`` if it is a valid id, else a 400 naming ``field`` (never echoing the value)."""
    try:
        return check_id(value, field)
    except InvalidId as exc:
        raise InvalidNotification(field, str(exc).partition(": ")[2]) from None


def parse_pax8(body: bytes) -> tuple[Notice, ProvisionNotification]:
    """Parse a Provision Notification webhook body."""
    data = load_json(body)
    request_id = _required_id(data, "provisionRequest")
    attempt_id = _required_id(data, "provisionAttempt")
    detail = data.get("provisionDetail")
    if not isinstance(detail, dict) or not detail.get("id"):
        # The attempt names its detail; accept a notification that only carries it there.
        detail_id = data["provisionAttempt"].get("provisionDetailId")
        if not isinstance(detail_id, str) or not detail_id:
            raise InvalidNotification("provisionDetail.id", "missing or empty")
        detail = detail if isinstance(detail, dict) else {}
        data["provisionDetail"] = {**detail, "id": detail_id}
    _checked(data["provisionDetail"]["id"], "provisionDetail.id")
    webhook_id = data["provisionAttempt"].get("webhookId")
    if webhook_id is not None:
        _checked(webhook_id, "provisionAttempt.webhookId")
    kind = data["provisionRequest"].get("type")
    try:
        request_type = RequestType(kind)
    except ValueError:
        known = ", ".join(t.value for t in RequestType)
        # The value itself is never echoed (an answer, a log line: it is outside input).
        raise InvalidNotification(
            "provisionRequest.type", f"not a known request type ({known})"
        ) from None
    try:
        parsed = ProvisionNotification.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidNotification(where, str(error["msg"])) from None
    request = parsed.provision_request
    notice = Notice(
        request_id=request_id,
        detail_id=parsed.provision_detail.id,
        attempt_id=attempt_id,
        type=request_type.value,
        simulation=parsed.is_simulation,
        payload=json.dumps(data, separators=(",", ":")),
        source="pax8",
        webhook_id=parsed.provision_attempt.webhook_id or "",
        products=products_of(request),
        old_products=(request.old_product_id,) if request.old_product_id else (),
    )
    return notice, parsed


def products_of(request: ProvisionRequest) -> tuple[str, ...]:
    """What a Pax8 request is routed by: its ``productId`` (a ChangeProduct's new one)."""
    return (request.product_id,) if request.product_id else ()
