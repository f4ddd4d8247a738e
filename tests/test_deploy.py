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

from tests.support.procs import ROOT, Proc, free_port

PROCFILE_LINES = {
    line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line
}


def test_procfile_has_the_designed_processes() -> None:
    assert PROCFILE_LINES == {"web", "worker", "beat", "flower", "console", "sandbox"}
    text = (ROOT / "Procfile").read_text()
    assert "gunicorn -c python:receiver.gunicorn_conf receiver.wsgi:app" in text
    assert "${PORT:-8000}" in text
    assert "celery -A worker.app worker" in text and "--pool prefork" in text
    assert "celery -A worker.app beat" in text and "celery -A worker.app flower" in text
    assert "console: python -m console" in text


def test_compose_services_run_procfile_lines_and_redis_keeps_an_aof() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("web", "worker", "beat", "flower", "console", "sandbox"):
        assert services[name]["command"] == [name], name
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


def test_bin_procfile_runs_a_line_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    port = free_port()
    proc = Proc(
        "procfile-sandbox", ["bin/procfile", "sandbox"], {"SANDBOX_PORT": str(port)}, tmp_path
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
