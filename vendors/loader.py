"""Build a vendor adapter from its spec: ``example``, ``http`` or ``package.module:Class``."""

from __future__ import annotations

import importlib

from config.settings import ConfigError, Settings
from vendors.base import VendorAdapter

BUILT_IN = {
    "example": "vendors.example:ExampleAdapter",
    "http": "vendors.http:HttpAdapter",
}


def adapter_class(spec: str, variable: str = "VENDOR_ADAPTER") -> type[VendorAdapter]:
    """Resolve ``spec`` to an adapter class; :class:`ConfigError` naming ``variable`` if not."""
    path = BUILT_IN.get(spec, spec)
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError(variable, f"{spec!r} is not example, http or package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(variable, f"cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, VendorAdapter):
        raise ConfigError(variable, f"{path!r} is not a subclass of vendors.base.VendorAdapter")
    return cls


def load_adapter(spec: str, settings: Settings, variable: str = "VENDOR_ADAPTER") -> VendorAdapter:
    """Instantiate the adapter ``spec`` with ``settings``."""
    cls = adapter_class(spec, variable)
    try:
        return cls(settings)
    except (ValueError, TypeError) as exc:
        raise ConfigError(variable, f"{spec!r} could not start: {exc}") from None


class Adapters:
    """The production and simulation adapters of one worker process, built on first use.

    When both settings name the same adapter, one instance serves both.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[str, VendorAdapter] = {}

    def _spec(self, simulation: bool) -> tuple[str, str]:
        if simulation:
            return self.settings.simulation_adapter, "SIMULATION_VENDOR_ADAPTER"
        return self.settings.vendor_adapter, "VENDOR_ADAPTER"

    def check(self) -> None:
        """Resolve both specs now, so a bad one stops the process at start."""
        for simulation in (False, True):
            adapter_class(*self._spec(simulation))

    def for_order(self, simulation: bool) -> VendorAdapter:
        """The adapter that handles production (or simulated) orders."""
        spec, variable = self._spec(simulation)
        if spec not in self._built:
            self._built[spec] = load_adapter(spec, self.settings, variable)
        return self._built[spec]

    def close(self) -> None:
        """Close every adapter built."""
        for adapter in self._built.values():
            adapter.close()
        self._built.clear()
