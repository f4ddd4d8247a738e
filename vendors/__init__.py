"""Vendor adapters: the interface, the ``example`` reference vendor and the ``http`` bridge."""

from vendors.base import Order, Provisioned, VendorAdapter, idempotency_key
from vendors.errors import PermanentVendorError, TransientVendorError, VendorError

__all__ = [
    "Order",
    "PermanentVendorError",
    "Provisioned",
    "TransientVendorError",
    "VendorAdapter",
    "VendorError",
    "idempotency_key",
]
