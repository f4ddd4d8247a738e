"""The routes file (``config/routes.py``): what a good one means, and one line for a bad one.

Every problem is a :class:`~config.routes.RoutesError` naming the file, the route (where
there is one) and the problem; through the settings it is one configuration error naming
``VENDOR_ROUTES``, and a process stops with that one line (``load_settings``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from config.routes import DEFAULT_ROUTE, RoutesError, load_routes
from config.scrub import Scrubber
from config.settings import ConfigError, explicit_settings
from tests.support.procs import ROOT

P1, P2, P3 = (
    "0a6d1c62-4c42-4f46-9a9f-6e0e1f1f0001",
    "0a6d1c62-4c42-4f46-9a9f-6e0e1f1f0002",
    "0a6d1c62-4c42-4f46-9a9f-6e0e1f1f0003",
)

FULL = f"""
default_route = "backup"

[routes.backup]
products = ["{P1}"]
mpns = ["BKP-USER", "BKP-GB"]
adapter = "http"
url = "https://backup.example.com/pax8/orders/"
token_env = "BACKUP_TOKEN"
timeout_seconds = 20
usage_url = "https://backup.example.com/pax8/usage"

[routes.backup.simulation]
url = "https://staging.backup.example.com/pax8/orders"
token_env = "BACKUP_STAGING_TOKEN"

[routes.archive]
products = ["{P2}"]
adapter = "tests.support.adapters:RecordingAdapter"
call_deadline_seconds = 90

[routes.archive.options]
region = "eu"

[routes.mail]
products = ["{P3}"]
adapter = "example"

[routes.mail.simulation]
adapter = "http"
url = "http://127.0.0.1:9/orders"
"""

ENV = {"BACKUP_TOKEN": "backup-production-token", "BACKUP_STAGING_TOKEN": "backup-staging-token"}
PAX8 = {"pax8_client_id": "client", "pax8_client_secret": "client-secret"}


def write(tmp_path: Path, text: str, name: str = "routes.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_full_routes_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    routes = load_routes(path, ENV)
    assert routes.from_file and routes.source == path
    assert routes.names == ("backup", "archive", "mail") and routes.default == "backup"
    backup = routes.get("backup")
    assert backup is not None
    assert backup.products == {P1} and backup.mpns == {"BKP-USER", "BKP-GB"}
    prod, sim = backup.production, backup.simulation
    assert (prod.adapter, prod.url, prod.timeout_seconds) == (
        "http",
        "https://backup.example.com/pax8/orders",
        20.0,
    )
    assert prod.token is not None and prod.token.get_secret_value() == "backup-production-token"
    # Simulation takes production's settings, but what it says itself.
    assert (sim.adapter, sim.url, sim.timeout_seconds) == (
        "http",
        "https://staging.backup.example.com/pax8/orders",
        20.0,
    )
    assert sim.token is not None and sim.token.get_secret_value() == "backup-staging-token"
    assert sim.usage_url == prod.usage_url and not prod.same_adapter(sim)
    archive = routes.get("archive")
    assert archive is not None and archive.production.options == {"region": "eu"}
    assert archive.production.call_deadline_seconds == 90.0
    assert archive.production.same_adapter(archive.simulation)
    mail = routes.get("mail")
    # Another adapter for simulation: nothing of production's carries over.
    assert mail is not None and mail.simulation.adapter == "http"
    assert mail.production.adapter == "example" and mail.simulation.token is None
    assert routes.route_of_product(P2) == "archive"
    assert routes.route_of_product("not-listed") == "backup"
    assert routes.route_of_mpn("BKP-GB") == "backup"
    assert sorted(routes.secrets()) == sorted(ENV.values())


def test_refusing_unknown_products(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        unknown_products = "refuse"
        [routes.only]
        products = ["{P1}"]
        adapter = "example"
        """,
    )
    routes = load_routes(path, {})
    assert routes.default is None
    assert routes.route_of_product(P1) == "only" and routes.route_of_product(P2) is None


BAD = [
    ("default_route = [", None, "not valid TOML"),
    ('colour = "blue"\n[routes.a]\nadapter = "example"', None, "unknown key 'colour'"),
    ('default_route = "a"', None, "no routes: add a [routes.NAME] table"),
    ('[routes.a]\nadapter = "example"', None, "say where a product no route lists goes"),
    (
        'default_route = "a"\nunknown_products = "refuse"\n[routes.a]\nadapter = "example"',
        None,
        "both set: choose one",
    ),
    ('unknown_products = "maybe"\n[routes.a]\nadapter = "example"', None, 'must be "refuse"'),
    ('default_route = "b"\n[routes.a]\nadapter = "example"', None, "default_route 'b' is not a"),
    ('default_route = "a"\n[routes.A]\nadapter = "example"', None, "route name 'A'"),
    ('default_route = "a"\n[routes.a]\nadaptor = "example"', "a", "unknown key 'adaptor'"),
    ('default_route = "a"\n[routes.a]\nproducts = []', "a", "no adapter"),
    ('default_route = "a"\n[routes.a]\nadapter = "soap"', "a", "adapter 'soap' is not example"),
    ('default_route = "a"\n[routes.a]\nadapter = "http"', "a", "the http adapter needs a url"),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\nurl = "https://x.example"',
        "a",
        "url is a setting of the http adapter only",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "http"\nurl = "ftp://x"',
        "a",
        "url must be an http:// or https:// URL",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "http"\nurl = "https://x"\n'
        "[routes.a.options]\nk = 1",
        "a",
        "options are for a package.module:Class adapter",
    ),
    (
        f'default_route = "a"\n[routes.a]\nadapter = "example"\nproducts = ["{P1}"]\n'
        f'[routes.b]\nadapter = "example"\nproducts = ["{P1}"]',
        "b",
        f"product {P1} is in route a too",
    ),
    (
        f'default_route = "a"\n[routes.a]\nadapter = "example"\nproducts = ["{P1}", "{P1}"]',
        "a",
        f"products: {P1} is listed twice",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\nmax_in_flight = -1',
        "a",
        "max_in_flight must be 0 (no cap) to 100000",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\nmax_in_flight = 2.5',
        "a",
        "max_in_flight must be 0 (no cap) to 100000",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\nmpns = ["has space"]',
        "a",
        "mpns: 'has space' is not an id",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "http"\nurl = "https://x"\n'
        'token_env = "NOT-A-NAME"',
        "a",
        "token_env must name an environment variable",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "http"\nurl = "https://x"\n'
        "timeout_seconds = 30\ncall_deadline_seconds = 10",
        "a",
        "call_deadline_seconds (10) is below timeout_seconds (30)",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\ncall_deadline_seconds = -1',
        "a",
        "call_deadline_seconds must be a number of seconds above 0",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "http"\nurl = "https://x"\n'
        "max_answer_bytes = 10",
        "a",
        "max_answer_bytes must be 1024 to 16777216",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\nsimulation = "yes"',
        "a",
        "simulation must be a table",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\n[routes.a.simulation]\nuri = 1',
        "a",
        "simulation: unknown key 'uri'",
    ),
    (
        'default_route = "a"\n[routes.a]\nadapter = "example"\n[routes.a.simulation]\n'
        'adapter = "http"',
        "a",
        "simulation: the http adapter needs a url",
    ),
]


@pytest.mark.parametrize(("text", "route", "problem"), BAD)
def test_a_bad_routes_file_is_one_error_naming_the_file_the_route_and_the_problem(
    tmp_path: Path, text: str, route: str | None, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RoutesError) as caught:
        load_routes(path, {})
    error = caught.value
    assert error.path == path and error.route == route and problem in error.problem
    line = str(error)
    assert "\n" not in line and line.startswith(f"{path}: ")
    if route:
        assert f": route {route}: " in line
    # Through the settings: the variable, the file, the route, the problem.
    with pytest.raises(ConfigError) as through:
        explicit_settings(vendor_routes=path)
    assert through.value.variable == "VENDOR_ROUTES" and str(through.value) == (
        f"VENDOR_ROUTES: {line}"
    )


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="routes.toml: no such file"):
        explicit_settings(vendor_routes=tmp_path / "routes.toml")


def test_token_variables_are_checked_where_a_worker_needs_them(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    # Read without the tokens (as the receiver and beat do): fine; a worker refuses to start.
    partial = {"BACKUP_TOKEN": ENV["BACKUP_TOKEN"]}
    settings = explicit_settings(vendor_routes=path, environ=partial, **PAX8)
    settings.require("beat")
    with pytest.raises(ConfigError) as missing:
        settings.require("worker")
    assert str(missing.value) == (
        f"VENDOR_ROUTES: {path}: route backup: simulation: token_env names "
        "BACKUP_STAGING_TOKEN, which is not set in this process's environment"
    )
    short = explicit_settings(vendor_routes=path, environ={**ENV, "BACKUP_TOKEN": "short"}, **PAX8)
    with pytest.raises(ConfigError, match="route backup: production: the token in BACKUP_TOKEN"):
        short.require("worker")
    # A worker of one backend needs that backend's token only.
    explicit_settings(vendor_routes=path, worker_routes="archive", **PAX8).require("worker")
    explicit_settings(vendor_routes=path, environ=ENV, **PAX8).require("worker")


def test_usage_reporting_needs_a_usage_source_for_every_http_backend(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        default_route = "a"
        [routes.a]
        adapter = "http"
        url = "https://a.example/orders"
        """,
    )
    settings = explicit_settings(vendor_routes=path, usage_reporting=True, **PAX8)
    with pytest.raises(ConfigError, match="route a: production: the http adapter needs a usage"):
        settings.require("worker")


def test_settings_that_a_routes_file_replaces_or_that_name_unknown_routes(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    for name in ("vendor_adapter", "simulation_vendor_adapter", "vendor_http_url"):
        value = "https://x.example" if name.endswith("url") else "example"
        with pytest.raises(ConfigError) as both:
            explicit_settings(vendor_routes=path, **{name: value})
        assert both.value.variable == "VENDOR_ROUTES"
        assert f"set together with {name.upper()}" in both.value.problem
    with pytest.raises(ConfigError, match="WORKER_ROUTES: billing is not a route of"):
        explicit_settings(vendor_routes=path, worker_routes="backup,billing")
    with pytest.raises(ConfigError, match="choose one"):
        explicit_settings(vendor_routes=path, worker_routes="mail", worker_exclude_routes="mail")
    with pytest.raises(ConfigError, match="WORKER_EXCLUDE_ROUTES: names routes, but VENDOR_"):
        explicit_settings(worker_exclude_routes="mail")
    excluded = explicit_settings(vendor_routes=path, worker_exclude_routes="archive, mail")
    assert [excluded.serves(n) for n in ("backup", "archive", "mail")] == [True, False, False]


def test_without_a_routes_file_vendor_adapter_is_the_one_default_route() -> None:
    settings = explicit_settings(
        vendor_adapter="example",
        simulation_vendor_adapter="http",
        vendor_http_url="https://vendor.example/orders",
        vendor_http_token="the-http-token",
    )
    routes = settings.routes
    assert not routes.from_file and routes.names == (DEFAULT_ROUTE,)
    assert routes.default == DEFAULT_ROUTE and routes.route_of_product("anything") == "default"
    (route,) = routes
    assert not route.own_queue  # the per-type queues, as before routes
    assert route.production.adapter == "example" and route.simulation.adapter == "http"
    assert route.simulation.token is not None
    assert route.simulation.token.get_secret_value() == "the-http-token"


def test_route_tokens_are_scrubbed_by_value(tmp_path: Path) -> None:
    settings = explicit_settings(vendor_routes=write(tmp_path, FULL), environ=ENV)
    scrubber = Scrubber.from_settings(settings)
    text = scrubber.text("sent backup-staging-token and backup-production-token")
    assert "backup-staging-token" not in text and "backup-production-token" not in text


def test_a_process_with_a_bad_routes_file_stops_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'default_route = "a"\n[routes.a]\nadapter = "soap"')
    done = subprocess.run(
        [sys.executable, "-c", "from config.settings import load_settings; load_settings()"],
        cwd=ROOT,
        env={"VENDOR_ROUTES": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"fulfillment: configuration error: VENDOR_ROUTES: {path}: route a: adapter 'soap' "
        "is not example, http or package.module:Class\n"
    )
