"""Build vendor adapters: one per route and environment, from the routes (``config/routes.py``).

An adapter spec is ``example``, ``http`` or ``package.module:Class``. Without a routes file
there is one route, the default, whose specs are ``VENDOR_ADAPTER`` and
``SIMULATION_VENDOR_ADAPTER``; with one, each route names its own, with its own settings, and
:meth:`Adapters.check` resolves every spec at a worker's start (an unknown adapter stops it
with one line naming the file and the route).
"""

from __future__ import annotations

import importlib

from config.routes import Backend, Routes, RoutesError
from config.settings import ConfigError, Settings
from vendors.base import VendorAdapter

BUILT_IN = {
    "example": "vendors.example:ExampleAdapter",
    "http": "vendors.http:HttpAdapter",
}


def adapter_class(spec: str, variable: str = "VENDOR_ADAPTER") -> type[VendorAdapter]:
    """Resolve ``spec`` to an adapter class; :class:`ConfigError` naming ``variable`` if not."""
    try:
        return _resolve(spec)
    except ValueError as exc:
        raise ConfigError(variable, str(exc)) from None


def _resolve(spec: str) -> type[VendorAdapter]:
    """``spec``'s class, or ValueError saying what is wrong with it."""
    path = BUILT_IN.get(spec, spec)
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"{spec!r} is not example, http or package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, VendorAdapter):
        raise ValueError(f"{path!r} is not a subclass of vendors.base.VendorAdapter")
    return cls


def load_adapter(spec: str, settings: Settings, variable: str = "VENDOR_ADAPTER") -> VendorAdapter:
    """Instantiate the adapter ``spec`` with ``settings`` (the default route's settings)."""
    cls = adapter_class(spec, variable)
    try:
        return cls(settings)
    except (ValueError, TypeError) as exc:
        raise ConfigError(variable, f"{spec!r} could not start: {exc}") from None


class Adapters:
    """The adapters of one worker process: one per route and environment, built on first
    use (a route whose production and simulation backends are the same shares one)."""

    def __init__(self, settings: Settings, routes: Routes | None = None) -> None:
        self.settings = settings
        self.routes = routes if routes is not None else settings.routes
        self._built: dict[tuple[str, bool], VendorAdapter] = {}

    def _problem(self, backend: Backend, problem: str) -> ConfigError:
        """The one line that names where a bad backend is configured."""
        if not self.routes.from_file:
            variable = "SIMULATION_VENDOR_ADAPTER" if backend.simulation else "VENDOR_ADAPTER"
            return ConfigError(variable, problem)
        where = RoutesError(self.routes.source, backend.route, f"{backend.environment}: {problem}")
        return ConfigError("VENDOR_ROUTES", str(where))

    def check(self, routes: list[str] | None = None) -> None:
        """Resolve every spec now (of ``routes`` only, when given: what a worker serves), so
        a bad one stops the process at start."""
        for route in self.routes:
            if routes is not None and route.name not in routes:
                continue
            for backend in route.backends:
                try:
                    _resolve(backend.adapter)
                except ValueError as exc:
                    raise self._problem(backend, str(exc)) from None

    def backend(self, route: str, simulation: bool) -> Backend | None:
        """The backend of ``route`` for production (or simulated) orders; None when the
        routes have no such route."""
        known = self.routes.get(route)
        return known.backend(simulation) if known is not None else None

    def for_route(self, route: str, simulation: bool) -> VendorAdapter:
        """The adapter of ``route`` for production (or simulated) orders; KeyError when the
        routes have no such route, :class:`ConfigError` when it cannot start."""
        key = (route, simulation)
        if key not in self._built:
            backend = self.backend(route, simulation)
            if backend is None:
                raise KeyError(route)
            twin = self.backend(route, not simulation)
            shared = self._built.get((route, not simulation))
            if shared is not None and twin is not None and twin.same_adapter(backend):
                self._built[key] = shared
            else:
                self._built[key] = self._build(backend)
        return self._built[key]

    def _build(self, backend: Backend) -> VendorAdapter:
        try:
            cls = _resolve(backend.adapter)
        except ValueError as exc:
            raise self._problem(backend, str(exc)) from None
        try:
            return cls.for_backend(self.settings, backend)
        except (ValueError, TypeError) as exc:
            raise self._problem(backend, f"{backend.adapter!r} could not start: {exc}") from None

    def for_order(self, simulation: bool) -> VendorAdapter:
        """The default route's adapter for production (or simulated) orders."""
        if self.routes.default is None:
            raise KeyError("the routes file has no default route")
        return self.for_route(self.routes.default, simulation)

    def call_deadline(self, route: str, simulation: bool) -> float | None:
        """How long a call of ``route``'s adapter may still be running after it starts: the
        route's ``call_deadline_seconds``, else the adapter's own (None: the task's hard
        limit)."""
        backend = self.backend(route, simulation)
        if backend is not None and backend.call_deadline_seconds is not None:
            return backend.call_deadline_seconds
        return self.for_route(route, simulation).call_deadline_seconds

    def close(self) -> None:
        """Close every adapter built (once each, shared ones too)."""
        for adapter in {id(a): a for a in self._built.values()}.values():
            adapter.close()
        self._built.clear()
