"""The routes file (``VENDOR_ROUTES``): which backend provisions which product.

A vendor that sells several products through one deployment names each backend once, a
*route*, with the Pax8 ``productId``s (and CloudBlue MPNs) it provisions and the adapter that
reaches it, for production and simulation; orders of a product no route lists go to the
``default_route``, or are refused (``unknown_products = "refuse"``). ``docs/routes.md`` is the
reference, with a full example.

Without a routes file there is one route, named :data:`DEFAULT_ROUTE`, built from
``VENDOR_ADAPTER`` (and ``SIMULATION_VENDOR_ADAPTER``, ``VENDOR_HTTP_*``): a deployment that
never heard of routes works as it did, on the same queues.

What is checked here, without importing any adapter (every process reads the file, and the
receiver never loads vendor code): the TOML, every key (a typo is an error, not a silent
default), route names, the adapter spec's form, each adapter's own settings, every product
in at most one route, and a default or an explicit refusal. Whether an adapter imports and a
token variable is set is checked where adapters are built (a worker's start,
``fulfill check-vendor``): :meth:`Routes.check_tokens` and ``vendors/loader.py``. Every
problem is one :class:`RoutesError` naming the file, the route and the problem.

A route is the unit the workers' bulkheads and limits hang off: its orders run on a queue of
its own (``fulfillment/names.py``), so a worker can serve it alone (``WORKER_ROUTES``) and a
backend that hangs holds up nobody else's orders.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import SecretStr

DEFAULT_ROUTE = "default"
"""The name of the one route of a deployment without a routes file (``VENDOR_ADAPTER``)."""

ROUTE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
"""A route's name: it becomes part of a queue name and a metric label value."""
_PRODUCT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CLASS_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
BUILT_IN_ADAPTERS = ("example", "http")

MIN_TOKEN_LENGTH = 8
"""As ``VENDOR_HTTP_TOKEN``: shorter tokens cannot be told from ordinary words when logs are
scrubbed."""

_TOP_KEYS = {"default_route", "unknown_products", "routes"}
_BACKEND_KEYS = {
    "adapter",
    "url",
    "token_env",
    "timeout_seconds",
    "call_deadline_seconds",
    "max_answer_bytes",
    "usage_url",
    "options",
    "max_in_flight",
}
_ROUTE_KEYS = _BACKEND_KEYS | {"products", "mpns", "simulation"}
_HTTP_ONLY = ("url", "token_env", "timeout_seconds", "max_answer_bytes", "usage_url")


class RoutesError(ValueError):
    """The routes file cannot be used; the message names the file, the route and the problem."""

    def __init__(self, path: Path | None, route: str | None, problem: str) -> None:
        super().__init__(path, route, problem)
        self.path = path
        self.route = route
        self.problem = problem

    def __str__(self) -> str:
        where = [str(self.path) if self.path else "VENDOR_ADAPTER"]
        if self.route:
            where.append(f"route {self.route}")
        return ": ".join([*where, self.problem])


@dataclass(frozen=True)
class Backend:
    """One route's adapter in one environment, with that adapter's own settings."""

    route: str
    simulation: bool
    adapter: str
    """``example``, ``http`` or ``package.module:Class``."""
    url: str | None = None
    token_env: str | None = None
    """The environment variable the token is read from (``None``: no token, or the
    ``VENDOR_HTTP_TOKEN`` of the default route without a routes file)."""
    token: SecretStr | None = field(default=None, repr=False)
    timeout_seconds: float | None = None
    max_answer_bytes: int | None = None
    usage_url: str | None = None
    call_deadline_seconds: float | None = None
    """How long one call may still be running after it starts (``None``: the adapter's own
    :attr:`~vendors.base.VendorAdapter.call_deadline_seconds`)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The route's ``options`` table, for a ``package.module:Class`` adapter."""
    max_in_flight: int | None = None
    """The most calls in flight at this backend across the deployment (0: no cap; ``None``:
    ``VENDOR_MAX_IN_FLIGHT``)."""

    @property
    def environment(self) -> str:
        """``production`` or ``simulation``."""
        return "simulation" if self.simulation else "production"

    @property
    def label(self) -> str:
        """``archive (simulation)``: how messages name this backend."""
        return f"{self.route} ({self.environment})"

    def same_adapter(self, other: Backend) -> bool:
        """Whether ``other`` is built the same (one adapter instance can serve both)."""
        return replace(self, simulation=other.simulation) == other


@dataclass(frozen=True)
class Route:
    """A named backend: its products, and its adapter for production and for simulation."""

    name: str
    production: Backend
    simulation: Backend
    products: frozenset[str] = frozenset()
    mpns: frozenset[str] = frozenset()
    own_queue: bool = True
    """Whether its orders run on a queue of their own (every route of a routes file); the
    default route without a file keeps the per-type queues."""

    def backend(self, simulation: bool) -> Backend:
        """The backend of production (or simulated) orders."""
        return self.simulation if simulation else self.production

    @property
    def backends(self) -> tuple[Backend, Backend]:
        """Production's backend, then simulation's."""
        return self.production, self.simulation


@dataclass(frozen=True)
class Routes:
    """Every route of a deployment, and where the orders of an unlisted product go."""

    routes: Mapping[str, Route]
    default: str | None
    """The route of a product no route lists (and of PartnerEnrollment); ``None``: refused."""
    source: Path | None = None
    """The routes file, or ``None`` for the one route of ``VENDOR_ADAPTER``."""

    @property
    def from_file(self) -> bool:
        """Whether the routes come from a routes file (``VENDOR_ROUTES``)."""
        return self.source is not None

    @property
    def names(self) -> tuple[str, ...]:
        """The route names, in the file's order."""
        return tuple(self.routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes.values())

    def get(self, name: str) -> Route | None:
        """The route named ``name``, if the deployment has it."""
        return self.routes.get(name)

    def route_of_product(self, product_id: str) -> str | None:
        """The route of a Pax8 ``productId``: its own, else the default (``None``: refused)."""
        for route in self:
            if product_id in route.products:
                return route.name
        return self.default

    def route_of_mpn(self, mpn: str) -> str | None:
        """The route of a CloudBlue MPN: its own, else the default (``None``: refused)."""
        for route in self:
            if mpn in route.mpns:
                return route.name
        return self.default

    def secrets(self) -> list[str]:
        """Every token the backends hold (scrubbed from logs and Sentry by value)."""
        return [
            backend.token.get_secret_value()
            for route in self
            for backend in route.backends
            if backend.token is not None
        ]

    def check_tokens(self) -> None:
        """Every token variable a backend names is set, and long enough: what a worker needs
        to call them (the receiver and beat never do, and are not given them)."""
        for route in self:
            for backend in route.backends:
                if backend.token_env and backend.token is None:
                    raise RoutesError(
                        self.source,
                        route.name,
                        f"{backend.environment}: token_env names {backend.token_env}, which "
                        "is not set in this process's environment",
                    )
                if backend.token is not None and (
                    len(backend.token.get_secret_value()) < MIN_TOKEN_LENGTH
                ):
                    raise RoutesError(
                        self.source,
                        route.name,
                        f"{backend.environment}: the token in {backend.token_env} is only "
                        f"{len(backend.token.get_secret_value())} characters: at least "
                        f"{MIN_TOKEN_LENGTH}",
                    )


def single_route(production: Backend, simulation: Backend) -> Routes:
    """The routes of a deployment without a routes file: one route, the default, on the
    per-type queues (``VENDOR_ADAPTER``)."""
    route = Route(DEFAULT_ROUTE, production, simulation, own_queue=False)
    return Routes(MappingProxyType({DEFAULT_ROUTE: route}), DEFAULT_ROUTE, None)


@dataclass(frozen=True)
class HttpDefaults:
    """What an ``http`` backend takes when its route does not say (``VENDOR_HTTP_*``)."""

    timeout_seconds: float = 30.0
    max_answer_bytes: int = 64 * 1024


def load_routes(
    path: Path, environ: Mapping[str, str], defaults: HttpDefaults = HttpDefaults()
) -> Routes:
    """Read and check the routes file at ``path``; tokens from ``environ`` (a variable that
    is not there leaves the token unset: :meth:`Routes.check_tokens` says so where it is
    needed). Raises :class:`RoutesError`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoutesError(path, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesError(path, None, f"cannot be read ({type(exc).__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RoutesError(path, None, f"not valid TOML ({exc})") from None
    return _Parser(path, environ, defaults).routes(data)


class _Parser:
    """Turns the file's TOML into :class:`Routes`, one :class:`RoutesError` per problem."""

    def __init__(self, path: Path, environ: Mapping[str, str], defaults: HttpDefaults) -> None:
        self.path = path
        self.environ = environ
        self.defaults = defaults

    def error(self, route: str | None, problem: str) -> RoutesError:
        return RoutesError(self.path, route, problem)

    def routes(self, data: dict[str, Any]) -> Routes:
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise self.error(
                None,
                f"unknown key {unknown[0]!r} (the file has default_route or unknown_products, "
                "and [routes.NAME] tables)",
            )
        tables = data.get("routes")
        if not isinstance(tables, dict) or not tables:
            raise self.error(None, "no routes: add a [routes.NAME] table per backend")
        routes: dict[str, Route] = {}
        owners: dict[tuple[str, str], str] = {}
        for name, table in tables.items():
            route = self.route(name, table)
            for kind, values in (("product", route.products), ("MPN", route.mpns)):
                for value in sorted(values):
                    other = owners.setdefault((kind, value), name)
                    if other != name:
                        raise self.error(
                            name, f"{kind} {value} is in route {other} too: each is in one route"
                        )
            routes[name] = route
        return Routes(MappingProxyType(routes), self.default(data, routes), self.path)

    def default(self, data: dict[str, Any], routes: dict[str, Route]) -> str | None:
        default, refusal = data.get("default_route"), data.get("unknown_products")
        if default is not None and refusal is not None:
            raise self.error(None, "default_route and unknown_products are both set: choose one")
        if refusal is not None:
            if refusal != "refuse":
                raise self.error(None, 'unknown_products must be "refuse" (or use default_route)')
            return None
        if default is None:
            raise self.error(
                None,
                'say where a product no route lists goes: default_route = "NAME", or '
                'unknown_products = "refuse"',
            )
        if not isinstance(default, str) or default not in routes:
            names = ", ".join(routes)
            raise self.error(None, f"default_route {default!r} is not a route ({names})")
        return default

    def route(self, name: Any, table: Any) -> Route:
        if not isinstance(name, str) or not ROUTE_NAME.fullmatch(name):
            raise self.error(
                None,
                f"route name {str(name)[:40]!r}: 1-32 lower-case letters, digits, '_' or '-', "
                "starting with a letter",
            )
        if not isinstance(table, dict):
            raise self.error(name, "must be a table ([routes.NAME])")
        unknown = sorted(set(table) - _ROUTE_KEYS)
        if unknown:
            raise self.error(name, f"unknown key {unknown[0]!r} ({', '.join(sorted(_ROUTE_KEYS))})")
        products = self.ids(name, table, "products")
        mpns = self.ids(name, table, "mpns")
        own = {key: value for key, value in table.items() if key in _BACKEND_KEYS}
        production = self.backend(name, False, own)
        overrides = table.get("simulation", {})
        if not isinstance(overrides, dict):
            raise self.error(name, "simulation must be a table ([routes.NAME.simulation])")
        unknown = sorted(set(overrides) - _BACKEND_KEYS)
        if unknown:
            raise self.error(name, f"simulation: unknown key {unknown[0]!r}")
        if "adapter" in overrides:
            # Another adapter: none of production's own settings carry over to it.
            simulation = self.backend(name, True, overrides)
        else:
            simulation = self.backend(name, True, {**own, **overrides})
        return Route(name, production, simulation, products, mpns)

    def ids(self, route: str, table: dict[str, Any], key: str) -> frozenset[str]:
        values = table.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self.error(route, f"{key} must be a list of strings")
        for value in values:
            if not _PRODUCT.fullmatch(value):
                raise self.error(
                    route,
                    f"{key}: {value[:40]!r} is not an id (1-128 letters, digits, '.', '_' or "
                    "'-', starting with a letter or digit)",
                )
        if len(set(values)) != len(values):
            twice = next(v for v in values if values.count(v) > 1)
            raise self.error(route, f"{key}: {twice} is listed twice")
        return frozenset(values)

    def backend(self, route: str, simulation: bool, table: dict[str, Any]) -> Backend:
        which = "simulation: " if simulation else ""
        adapter = table.get("adapter")
        if adapter is None:
            raise self.error(route, f"{which}no adapter (example, http or package.module:Class)")
        if not isinstance(adapter, str) or not (
            adapter in BUILT_IN_ADAPTERS or _CLASS_SPEC.fullmatch(adapter)
        ):
            raise self.error(
                route,
                f"{which}adapter {str(adapter)[:60]!r} is not example, http or "
                "package.module:Class",
            )
        http = adapter == "http"
        if not http:
            given = [key for key in _HTTP_ONLY if key in table]
            if given:
                raise self.error(route, f"{which}{given[0]} is a setting of the http adapter only")
        elif "options" in table:
            raise self.error(route, f"{which}options are for a package.module:Class adapter")
        url = self.url(route, which, table, "url")
        if http and url is None:
            raise self.error(route, f"{which}the http adapter needs a url")
        token_env = table.get("token_env")
        if token_env is not None and (
            not isinstance(token_env, str) or not _VARIABLE.fullmatch(token_env)
        ):
            raise self.error(route, f"{which}token_env must name an environment variable")
        token = self.environ.get(token_env) if token_env else None
        timeout = self.number(route, which, table, "timeout_seconds")
        deadline = self.number(route, which, table, "call_deadline_seconds")
        if http:
            timeout = timeout or self.defaults.timeout_seconds
            if deadline is not None and deadline < timeout:
                raise self.error(
                    route,
                    f"{which}call_deadline_seconds ({deadline:g}) is below timeout_seconds "
                    f"({timeout:g}): a call may run that long, and no repeat may meet it",
                )
        answer = table.get("max_answer_bytes")
        if answer is not None and (
            not isinstance(answer, int) or isinstance(answer, bool) or not 1024 <= answer <= 2**24
        ):
            raise self.error(route, f"{which}max_answer_bytes must be 1024 to 16777216")
        options = table.get("options", {})
        if not isinstance(options, dict):
            raise self.error(route, f"{which}options must be a table")
        cap = table.get("max_in_flight")
        if cap is not None and (
            not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap <= 100_000
        ):
            raise self.error(route, f"{which}max_in_flight must be 0 (no cap) to 100000")
        return Backend(
            route=route,
            simulation=simulation,
            adapter=adapter,
            url=url,
            token_env=token_env,
            token=SecretStr(token) if token else None,
            timeout_seconds=timeout,
            max_answer_bytes=(answer or self.defaults.max_answer_bytes) if http else None,
            usage_url=self.url(route, which, table, "usage_url"),
            call_deadline_seconds=deadline,
            options=MappingProxyType(dict(options)),
            max_in_flight=cap,
        )

    def url(self, route: str, which: str, table: dict[str, Any], key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise self.error(route, f"{which}{key} must be an http:// or https:// URL")
        return value.rstrip("/")

    def number(self, route: str, which: str, table: dict[str, Any], key: str) -> float | None:
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.error(route, f"{which}{key} must be a number of seconds above 0")
        return float(value)
