"""How the process's parts are built: from one Settings, in one place, with no import cycle.

Two receivers built from two settings live in one process, each on its own Redis; the
top-level packages import each other without a cycle, ``cli`` on top (what each may import is
``docs/architecture.md#layout``, held by ``test_layout.py``); the Lua scripts and the Python
enum agree on the states.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import signals

from cli.redis_server import RedisServer
from fulfillment.ledger.refs import Ref, Scope
from fulfillment.ledger.scripts import LUA
from fulfillment.ledger.states import State
from fulfillment.runtime.clients import RedisUse
from fulfillment.usage.store import LUA as USAGE_LUA
from receiver.app import create_app
from tests.support.cloudblue import payload as cloudblue_payload
from tests.support.procs import ROOT
from tests.support.stack import notification
from tests.unit.conftest import PROD_SECRET, make_settings
from worker.services import build_services

PACKAGES = ("config", "pax8", "sandbox", "receiver", "worker", "tasks", "vendors",
            "fulfillment", "console", "cli")  # fmt: skip


def _imports() -> dict[str, set[str]]:
    """Every module each package imports (at any depth of its code, lazily or not)."""
    found: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found[package] |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found[package].add(node.module)
    return found


def test_the_packages_import_each_other_without_a_cycle() -> None:
    graph = {
        package: {name.split(".")[0] for name in names} & set(PACKAGES) - {package}
        for package, names in _imports().items()
    }
    # cli may use everything; nothing may use cli (it is the top).
    order: list[str] = []
    visiting: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        if package in order:
            return
        assert package not in visiting, f"import cycle: {' -> '.join((*path, package))}"
        visiting.add(package)
        for dependency in sorted(graph[package]):
            visit(dependency, (*path, package))
        visiting.discard(package)
        order.append(package)

    for package in PACKAGES:
        visit(package, ())
    assert order[-1] == "cli" or "cli" not in {d for deps in graph.values() for d in deps}


def test_the_lua_prelude_lists_the_states_in_the_enum_order() -> None:
    common = (LUA / "common.lua").read_text()
    listed = re.search(r"local STATES = \{([^}]*)\}", common)
    assert listed is not None
    assert re.findall(r"'(\w+)'", listed.group(1)) == [state.value for state in State]


def test_every_script_passes_its_keys_in_KEYS() -> None:
    scripts = [*LUA.glob("*.lua"), *USAGE_LUA.glob("*.lua")]
    assert len(scripts) > len(list(LUA.glob("*.lua")))  # the usage store's are checked too
    for path in scripts:
        source = path.read_text()
        # A key is never built inside Lua from a prefix and an id.
        assert "ARGV[1] .." not in source and "P .. " not in source, path.name
        assert source.startswith(f"-- {path.stem}:"), f"{path.name} lacks its header"


@pytest.fixture
def two_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    servers = [
        RedisServer(tmp_path_factory.mktemp(name), appendonly=False).start()
        for name in ("redis-a", "redis-b")
    ]
    yield servers[0].url, servers[1].url
    for server in servers:
        server.stop()


def headers(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The headers of the Celery messages waiting on ``queue``."""
    return [json.loads(m)["headers"] for m in client.lrange(queue, 0, -1)]


def test_two_apps_with_two_settings_each_use_their_own_redis(two_redis: tuple[str, str]) -> None:
    before = len(signals.worker_init.receivers or [])
    apps = {}
    for url in two_redis:
        settings = make_settings(url)
        apps[url] = create_app(settings, build_services(settings, RedisUse.RECEIVER))
    # The receiver connects none of the worker's process hooks.
    assert len(signals.worker_init.receivers or []) == before
    bodies = {url: notification() for url in two_redis}
    reports: dict[str, str] = {}
    for url, app in apps.items():
        response = app.test_client().post(
            "/webhooks/pax8",
            data=json.dumps(bodies[url]).encode(),
            headers={"pax8ApiTokenV1": PROD_SECRET},
        )
        assert response.status_code == 202
        # The publisher (fulfillment.report goes through kombu, not the ledger's script).
        report_ref = Ref(Scope.PAX8, f"report-{len(apps)}-{url.rsplit(':', 1)[1][:-2]}")
        app.extensions["fulfillment"].services.publisher.report(report_ref)
        reports[url] = report_ref.id
    for url in two_redis:
        other = next(u for u in two_redis if u != url)
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            assert client.exists(f"ff:req:pax8:{bodies[url]['provisionRequest']['id']}")
            assert not client.exists(f"ff:req:pax8:{bodies[other]['provisionRequest']['id']}")
            (task,) = [
                json.loads(m)["headers"] for m in client.lrange("fulfillment.net_new", 0, -1)
            ]
            assert bodies[url]["provisionRequest"]["id"] in task["argsrepr"]
            (report,) = [
                json.loads(m)["headers"] for m in client.lrange("fulfillment.report", 0, -1)
            ]
            assert report["argsrepr"] == repr([reports[url]])
        finally:
            client.close()
    for app in apps.values():
        app.extensions["fulfillment"].services.close()


def test_the_worker_app_is_the_only_one_with_tasks_and_hooks() -> None:
    tree = ast.parse((ROOT / "worker" / "app.py").read_text())
    statements = [
        ast.unparse(node)
        for node in tree.body
        if not isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]
    assert statements == ["app = create_celery(load_settings(), hooks=True)"], statements
    assert not (ROOT / "tasks" / "context.py").exists()


RECEIVER_PROBE = """
import json, sys
from receiver.wsgi import app
pax8_body, cloudblue_body = sys.argv[1].encode(), sys.argv[2].encode()
CALLERS = {"pax8.client", "pax8.auth", "vendors.http", "vendors.example", "vendors.loader",
           "vendors.deadline", "vendors.conformance", "sentry_sdk"}
client = app.test_client()
secret = {"pax8ApiTokenV1": "unit-production-secret-1"}
cloudblue = {"X-Fulfillment-Token": "unit-cloudblue-secret-1"}
codes = [
    client.post("/webhooks/pax8", data=pax8_body, headers=secret).status_code,
    client.post("/webhooks/pax8", data=pax8_body, headers=secret).status_code,
    client.post("/webhooks/pax8", data=b"{", headers=secret).status_code,
    client.post("/webhooks/pax8", data=pax8_body).status_code,
    client.post("/webhooks/cloudblue/create", data=cloudblue_body).status_code,
    client.post("/webhooks/cloudblue/create", data=cloudblue_body, headers=cloudblue).status_code,
    client.get("/healthz").status_code,
    client.get("/readyz").status_code,
]
services = app.extensions["fulfillment"].services
print(json.dumps({
    "codes": codes,
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("httpx", "httpcore")
                      or m in CALLERS),
    "pax8_built": services._pax8 is not None,
    "adapters_built": services._adapters is not None,
}))
"""


def test_the_receiver_never_builds_a_pax8_client_or_an_adapter(
    redis_url: str, tmp_path: Path
) -> None:
    """The public process holds no way to call Pax8 or the vendor: serving every kind of
    webhook, a CloudBlue call and the health routes, it never imports the Pax8 client, httpx
    or any adapter (so least privilege in compose is no promise the code could break)."""
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "PAX8_WEBHOOK_SECRETS": "unit-production-secret-1",
        "CLOUDBLUE_WEBHOOK_SECRETS": "unit-cloudblue-secret-1",
        "CLOUDBLUE_RESPONSE_TIMEOUT_SECONDS": "0.3",
        # Given anyway: the receiver must not use them.
        "PAX8_CLIENT_ID": "client",
        "PAX8_CLIENT_SECRET": "unit-client-secret-1",
        "WEB_METRICS_PORT": "0",
    }
    bodies = [json.dumps(notification()), json.dumps(cloudblue_payload("creation"))]
    done = subprocess.run(
        [sys.executable, "-c", RECEIVER_PROBE, *bodies],
        env=env,
        cwd=tmp_path,  # no .env file
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["codes"] == [202, 202, 400, 401, 401, 503, 200, 200], seen
    assert seen["modules"] == [] and not seen["pax8_built"] and not seen["adapters_built"]
