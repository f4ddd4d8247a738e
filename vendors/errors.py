"""What a vendor adapter raises when it cannot provision an order.

::

    VendorError
    ├── PermanentVendorError ... the order cannot succeed as it stands: reported to Pax8
    │   │                        as ``Fail`` with this message (a sentence a partner can act on)
    │   └── VendorContractError  the vendor says the worker broke the contract (an
    │                            idempotency key reused with another body): ``Fail``, and an
    │                            alert to Sentry, since it is a bug to fix
    └── TransientVendorError ... the vendor is down or busy: retried with backoff and
        │                        jitter, at least ``retry_after`` seconds later when given
        ├── VendorNoAnswer ..... the call ended without the vendor's answer (a timeout, a
        │                        dropped connection): it may still be running there, so the
        │                        retry waits for the call's deadline too
        └── VendorMisconfigured  the deployment is wrong, not the order (a redirect, a
                                 refused credential, a wrong URL, an answer too large to
                                 read): held like a transient error, never reported, with
                                 an alert naming the fix (``problem`` says which kind)

Anything else an adapter raises is a bug: the order is marked ``dead`` (nothing is
reported to Pax8) and the exception goes to Sentry, so an operator can fix and replay.
"""

from __future__ import annotations

from typing import Any


class VendorError(Exception):
    """Base of the errors a vendor adapter raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PermanentVendorError(VendorError):
    """The order cannot be provisioned; ``message`` is shown to the partner."""


class VendorContractError(PermanentVendorError):
    """The vendor refused a call the contract forbids us to make (a bug): ``Fail`` and an alert."""


class TransientVendorError(VendorError):
    """A temporary failure; retry later (not sooner than ``retry_after`` seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.retry_after))


class VendorNoAnswer(TransientVendorError):
    """The call ended without an answer; the vendor may still be carrying it out."""


class VendorMisconfigured(TransientVendorError):
    """The vendor's answer says the deployment is wrong (``message`` names the fix); the order
    is held and retried, never reported, until the fix is in or its budget is spent."""

    def __init__(self, message: str, problem: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after)
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.problem, self.retry_after))
