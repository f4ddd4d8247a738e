"""A typed client for Pax8's Vendor Provisioning API (models, OAuth2, paging, errors).

Names are imported on first use, so ``import pax8.models`` (the receiver parses with
the models) does not load httpx and the client.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Credentials": "pax8.auth",
    "TokenCache": "pax8.auth",
    "Pax8Client": "pax8.client",
    **dict.fromkeys(
        [
            "AuthenticationError",
            "ClientError",
            "Conflict",
            "CredentialsMissing",
            "HeldOff",
            "NotFound",
            "Pax8Error",
            "PermanentError",
            "RateLimited",
            "ServerError",
            "Timeout",
            "TransientError",
            "TransportError",
        ],
        "pax8.errors",
    ),
    **dict.fromkeys(
        [
            "ProvisionAttempt",
            "ProvisionDetail",
            "ProvisionNotification",
            "ProvisionRequest",
            "ProvisionResult",
            "RequestType",
            "ResultStatus",
        ],
        "pax8.models",
    ),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pax8' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
