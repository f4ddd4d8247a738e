"""The fast tier's fixtures: a real redis-server, the sandbox's Pax8 in-process, services.

Nothing here starts a worker, a receiver or a sandbox process. Pax8 is the sandbox's own
Flask app reached through ``httpx.WSGITransport`` (in-process, no socket), so a domain
function talks to the same Pax8 semantics the process tests use; Redis is real, because
the ledger's logic is Lua and Redis semantics.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from flask import Flask

from cli.redis_server import RedisServer
from config.settings import Settings, explicit_settings
from fulfillment.runtime.clients import RedisUse
from fulfillment.services import Services
from pax8.auth import Credentials
from pax8.client import Pax8Client
from sandbox.app import close_app
from sandbox.app import create_app as create_sandbox
from sandbox.config import SandboxConfig
from tests.support.publisher import RecordingPublisher
from vendors.loader import Adapters

PAX8 = "http://pax8.test"
PROD_SECRET = "unit-production-secret"
SIM_SECRET = "unit-simulation-secret"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("unit-redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client (decoded) on the session's server, which is not emptied for it."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The server's URL, emptied before each test (every test starts from nothing)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


def make_settings(
    redis_url: str, *, environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings for one unit test: this Redis, the in-process Pax8, short timings; from these
    values alone, never the environment or a ``.env`` file (``test_hermetic.py``).

    With ``vendor_routes`` there is no ``vendor_adapter`` (a routes file replaces it), and
    the routes file's token variables are read from ``environ``."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "pax8_api_url": f"{PAX8}/v2",
        "pax8_token_url": f"{PAX8}/v1/token",
        "pax8_client_id": "sandbox-client",
        "pax8_client_secret": "sandbox-secret",
        "pax8_simulation_client_id": "sandbox-sim-client",
        "pax8_simulation_client_secret": "sandbox-sim-secret",
        "pax8_webhook_secrets": PROD_SECRET,
        "pax8_simulation_webhook_secrets": SIM_SECRET,
        "retry_backoff_seconds": 0.1,
        "retry_backoff_max_seconds": 1.0,
        "vendor_adapter": "example",
    }
    if "vendor_routes" in overrides:
        del values["vendor_adapter"]
    values.update(overrides)
    return explicit_settings(environ=environ, **values)


@dataclass
class Pax8World:
    """The sandbox's Pax8 in this process: its app (for the control plane) and a client."""

    app: Flask
    client: Pax8Client

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the sandbox's control plane (``/sandbox/...``); the JSON answer."""
        response = self.app.test_client().open(f"/sandbox{path}", method=method, **kwargs)
        assert response.status_code < 300, response.get_data(as_text=True)
        return response.get_json()

    def bulk(self, count: int = 1, **body: Any) -> list[dict[str, Any]]:
        """Requests at Pax8 that nothing delivered: ``[{id, detailId, attemptId}]``."""
        body.setdefault("attempt_status", "Acknowledged")
        return list(self.control("POST", "/bulk", json={"count": count, **body})["requests"])

    def request(self, request_id: str) -> dict[str, Any]:
        """What Pax8 holds for one request (details, attempts, results)."""
        return dict(self.control("GET", f"/requests/{request_id}"))

    def results(self, request_id: str) -> list[dict[str, Any]]:
        """The results Pax8 stored for one request."""
        return list(self.request(request_id)["results"])

    def fault(self, **rule: Any) -> None:
        """Add a fault rule (``/sandbox/faults``)."""
        self.control("POST", "/faults", json=rule)


@pytest.fixture
def pax8() -> Iterator[Pax8World]:
    # Reached by name through the WSGI transport: a name it must be told (DNS rebinding).
    app = create_sandbox(SandboxConfig(allowed_hosts="pax8.test"))
    client = Pax8Client(
        f"{PAX8}/v2",
        f"{PAX8}/v1/token",
        production=Credentials("sandbox-client", "sandbox-secret"),
        simulation=Credentials("sandbox-sim-client", "sandbox-sim-secret"),
        transport=httpx.WSGITransport(app=app),
        retries=0,
        sleep=lambda _: None,
    )
    yield Pax8World(app, client)
    client.close()
    close_app(app)


ServicesFactory = Callable[..., Services]


@pytest.fixture
def make_services(redis_url: str, pax8: Pax8World) -> Iterator[ServicesFactory]:
    """Build services on this test's Redis and Pax8 (``**settings`` override the defaults)."""
    built: list[Services] = []

    def make(publisher: Any = None, use: RedisUse = RedisUse.WORKER, **overrides: Any) -> Services:
        settings = make_settings(redis_url, **overrides)
        services = Services(
            settings,
            use=use,
            publisher=publisher if publisher is not None else RecordingPublisher(),
            redis_client=redis.Redis.from_url(redis_url, decode_responses=True),
            pax8=pax8.client,
            adapters=Adapters(settings),
        )
        built.append(services)
        return services

    yield make
    for services in built:
        services.adapters.close()
        services.redis.close()


def new_id() -> str:
    return str(uuid.uuid4())
