"""Validation of a posted ProvisionResult, field by field, as the OpenAPI states it.

Rules (a 400 names the field): ``status`` is ``Success`` or ``Fail``; ``provisionAttemptId``
is optional; ``errorMessage`` is a string, silently truncated to 500 characters;
``metadata`` is an object; each ``externalProvisioner*Id`` is a non-empty string of letters,
digits, ``-`` and ``_``. Whether the attempt exists, belongs to the request, is acknowledged
and has no result yet is the store's business.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import invalid

STATUSES = ("Success", "Fail")
ERROR_MESSAGE_LIMIT = 500
EXTERNAL_ID_FIELDS = (
    "externalProvisionerSubscriptionId",
    "externalProvisionerPartnerId",
    "externalProvisionerCompanyId",
    "externalProvisionerPartnerEnrollmentId",
)
# fullmatch, not match: "$" would accept a trailing newline.
_EXTERNAL_ID = re.compile(r"[a-zA-Z0-9\-_]+")


@dataclass(frozen=True)
class ResultInput:
    """A valid result body, before the store gives it an id."""

    status: str
    attempt_id: str | None = None
    error_message: str | None = None
    metadata: dict[str, Any] | None = None
    external_ids: dict[str, str] = field(default_factory=dict)


def parse_result(body: Any) -> ResultInput:
    """Check a ProvisionResult body; raise a 400 naming the first invalid field."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    status = body.get("status")
    if status not in STATUSES:
        raise invalid("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    attempt_id = body.get("provisionAttemptId")
    if attempt_id is not None and (not isinstance(attempt_id, str) or not attempt_id):
        raise invalid("provisionAttemptId", "must be a non-empty string")
    message = body.get("errorMessage")
    if message is not None:
        if not isinstance(message, str):
            raise invalid("errorMessage", "must be a string")
        message = message[:ERROR_MESSAGE_LIMIT]
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata", "must be an object")
    external: dict[str, str] = {}
    for name in EXTERNAL_ID_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not _EXTERNAL_ID.fullmatch(value):
            raise invalid(
                name, "must be a non-empty string of letters, digits, hyphens and underscores"
            )
        external[name] = value
    return ResultInput(status, attempt_id, message, metadata, external)
