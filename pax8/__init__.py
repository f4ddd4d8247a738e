"""A typed client for Pax8's Vendor Provisioning API (models, OAuth2, paging, errors)."""

from pax8.auth import Credentials, TokenCache
from pax8.client import Pax8Client
from pax8.errors import (
    AuthenticationError,
    ClientError,
    Conflict,
    CredentialsMissing,
    NotFound,
    Pax8Error,
    PermanentError,
    RateLimited,
    ServerError,
    Timeout,
    TransientError,
    TransportError,
)
from pax8.models import (
    ProvisionAttempt,
    ProvisionDetail,
    ProvisionNotification,
    ProvisionRequest,
    ProvisionResult,
    RequestType,
    ResultStatus,
)

__all__ = [
    "AuthenticationError",
    "ClientError",
    "Conflict",
    "Credentials",
    "CredentialsMissing",
    "NotFound",
    "Pax8Client",
    "Pax8Error",
    "PermanentError",
    "ProvisionAttempt",
    "ProvisionDetail",
    "ProvisionNotification",
    "ProvisionRequest",
    "ProvisionResult",
    "RateLimited",
    "RequestType",
    "ResultStatus",
    "ServerError",
    "Timeout",
    "TokenCache",
    "TransientError",
    "TransportError",
]
