"""Run the Pax8 sandbox as a real process, steer it, and listen for its webhooks.

``start_sandbox(tmp_path, **options)`` starts ``python -m sandbox`` on a free loopback port
(options are its command-line options in Python spelling: ``retry_delay=0.1`` is
``--retry-delay 0.1``) and returns a :class:`SandboxHandle` with the URLs a Pax8 client needs
(``api_url``, ``token_url``), the credentials, and one method per control-plane route.

``WebhookListener`` is a tiny threaded HTTP server on 127.0.0.1 that records every request
and answers from a programmable list of status codes, to stand in for a vendor receiver.

Both are context managers and both must be stopped (the tests run with warnings as errors,
and an unclosed socket is a ResourceWarning).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support.loopback import LoopbackServer
from tests.support.procs import Proc, free_port, wait_until

__all__ = [
    "AUDIENCE",
    "Received",
    "SandboxHandle",
    "WebhookListener",
    "start_sandbox",
]

AUDIENCE = "api://provisioning"
DEFAULT_CREDENTIALS = {
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
    "simulation_client_id": "sandbox-sim-client",
    "simulation_client_secret": "sandbox-sim-secret",
}


def sandbox_command(port: int, options: dict[str, Any], host: str = "127.0.0.1") -> list[str]:
    """The argv that starts a sandbox on ``port`` with ``options`` (None values are left out)."""
    argv = [sys.executable, "-m", "sandbox", "--host", host, "--port", str(port)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        else:
            argv += [flag, str(value)]
    return argv


def start_sandbox(
    tmp_path: Path,
    name: str = "sandbox",
    env: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    **options: Any,
) -> SandboxHandle:
    """Start ``python -m sandbox`` on a free port and wait until it answers.

    ``options`` are sandbox settings (``max_retries=1``, ``webhook_url=...``); ``env`` adds
    environment variables (``SANDBOX_*`` ones are settings too, below the options). The
    process log is ``tmp_path/<name>.log``. ``host``: the address it listens on (another
    than loopback for hosts a test built: :mod:`tests.support.netns`).
    """
    port = free_port()
    command = sandbox_command(port, options, host)
    proc = Proc(name, command, env=dict(env or {}), log_dir=tmp_path)
    url = f"http://{host}:{port}"
    try:
        proc.wait_http(f"{url}/sandbox/health")
    except BaseException:
        proc.stop()
        raise
    credentials = {k: str(options.get(k) or v) for k, v in DEFAULT_CREDENTIALS.items()}
    return SandboxHandle(proc=proc, url=url, credentials=credentials)


@dataclass
class SandboxHandle:
    """A running sandbox: its URLs, credentials, and the control plane as methods."""

    proc: Proc
    url: str
    credentials: dict[str, str]
    control: httpx.Client = field(init=False)
    _clients: list[httpx.Client] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.control = httpx.Client(base_url=f"{self.url}/sandbox", timeout=60.0)

    # -- where Pax8 is ----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The provisioning API base (``PAX8_API_URL``)."""
        return f"{self.url}/v2"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint (``PAX8_TOKEN_URL``)."""
        return f"{self.url}/v1/token"

    def client_credentials(self, simulation: bool = False) -> tuple[str, str]:
        """The (client id, client secret) of one environment."""
        prefix = "simulation_" if simulation else ""
        return self.credentials[prefix + "client_id"], self.credentials[prefix + "client_secret"]

    def env(self) -> dict[str, str]:
        """The ``PAX8_*`` environment variables that point a worker at this sandbox."""
        client_id, client_secret = self.client_credentials()
        sim_id, sim_secret = self.client_credentials(simulation=True)
        return {
            "PAX8_API_URL": self.api_url,
            "PAX8_TOKEN_URL": self.token_url,
            "PAX8_CLIENT_ID": client_id,
            "PAX8_CLIENT_SECRET": client_secret,
            "PAX8_SIMULATION_CLIENT_ID": sim_id,
            "PAX8_SIMULATION_CLIENT_SECRET": sim_secret,
        }

    def token(self, simulation: bool = False) -> str:
        """A fresh access token for production (or simulation)."""
        client_id, client_secret = self.client_credentials(simulation)
        response = httpx.post(
            self.token_url,
            json={
                "client_id": client_id,
                "client_secret": client_secret,
                "audience": AUDIENCE,
                "grant_type": "client_credentials",
            },
            timeout=10.0,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, simulation: bool = False, timeout: float = 10.0) -> httpx.Client:
        """An httpx client on ``api_url`` with a bearer token; closed by :meth:`stop`."""
        client = httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token(simulation)}"},
            timeout=timeout,
        )
        self._clients.append(client)
        return client

    # -- control plane ----------------------------------------------------------------------

    def _call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self.control.request(method, path, **kwargs)
        if response.status_code != expect:
            raise AssertionError(
                f"{method} /sandbox{path} answered {response.status_code}, expected {expect}: "
                f"{response.text}"
            )
        return response.json()

    def config(self) -> dict[str, Any]:
        """``GET /sandbox/config``: provisioner ids, client ids, webhooks, delivery settings."""
        return dict(self._call("GET", "/config"))

    def provisioner_id(self, simulation: bool = False) -> str:
        """The provisioner id of production (or simulation)."""
        env = "simulation" if simulation else "production"
        return str(self.config()["environments"][env]["provisionerId"])

    def reset(self, webhooks: bool = False) -> None:
        """Forget all data, deliveries, counters, faults and tokens (webhooks too if asked)."""
        self._call("POST", "/reset", json={"webhooks": webhooks})

    def create_webhook(
        self,
        url: str,
        environment: str = "production",
        credential: str | None = None,
        header: str | None = None,
    ) -> dict[str, Any]:
        """A webhook configuration with a known credential (the newest one receives)."""
        body: dict[str, Any] = {"environment": environment, "url": url}
        if credential is not None:
            body["credential"] = credential
        if header is not None:
            body["header"] = header
        return dict(self._call("POST", "/webhooks", 201, json=body))

    def orders(
        self,
        count: int = 1,
        environment: str = "production",
        order: dict[str, Any] | None = None,
        deliver: bool = True,
        wait: bool = False,
    ) -> list[dict[str, Any]]:
        """Create orders (delivered with Pax8's retry rules); their order events."""
        body = {
            "environment": environment,
            "count": count,
            "order": order or {},
            "deliver": deliver,
            "wait": wait,
        }
        return list(self._call("POST", "/orders", 201, json=body)["orders"])

    def order(self, **kwargs: Any) -> dict[str, Any]:
        """Create one order; its order event (see :meth:`orders`)."""
        return self.orders(count=1, **kwargs)[0]

    def bulk(
        self,
        count: int,
        environment: str = "production",
        order: dict[str, Any] | None = None,
        attempt_status: str | None = "Failed",
    ) -> list[dict[str, Any]]:
        """Create requests without delivering anything; ``[{id, detailId, attemptId}]``."""
        body = {
            "environment": environment,
            "count": count,
            "order": order or {},
            "attempt_status": attempt_status,
        }
        return list(self._call("POST", "/bulk", 201, json=body)["requests"])

    def new_detail(
        self,
        request_id: str,
        details: dict[str, Any] | None = None,
        deliver: bool = True,
        wait: bool = False,
    ) -> dict[str, Any]:
        """The partner fixed checkout data: a new detail and attempt, delivered."""
        body = {"details": details or {}, "deliver": deliver, "wait": wait}
        return dict(self._call("POST", f"/requests/{request_id}/details", 201, json=body))

    def redeliver(self, request_id: str, wait: bool = False, retries: int = 0) -> dict[str, Any]:
        """A Pax8 retry: a new attempt for the latest detail, delivered."""
        body = {"wait": wait, "retries": retries}
        return dict(self._call("POST", f"/requests/{request_id}/redeliver", 201, json=body))

    def duplicate(self, attempt_id: str, times: int = 2) -> list[int | None]:
        """Send the same notification ``times`` times at once; the status codes."""
        body = {"times": times, "wait": True}
        return list(self._call("POST", f"/attempts/{attempt_id}/deliver", json=body)["statusCodes"])

    def requests(self, environment: str | None = None) -> list[dict[str, Any]]:
        """Every request with its details, attempts and results."""
        params = {"environment": environment} if environment else {}
        return list(self._call("GET", "/requests", params=params)["requests"])

    def request(self, request_id: str) -> dict[str, Any]:
        """One request with its details, attempts, results and ``unfulfilled`` flag."""
        return dict(self._call("GET", f"/requests/{request_id}"))

    def results(
        self,
        environment: str | None = None,
        request_id: str | None = None,
        attempt_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every result posted to the sandbox, filtered."""
        params = _params(environment=environment, request_id=request_id, attempt_id=attempt_id)
        return list(self._call("GET", "/results", params=params)["results"])

    def deliveries(
        self,
        environment: str | None = None,
        request_id: str | None = None,
        attempt_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every webhook delivery the sandbox made, filtered."""
        params = _params(environment=environment, request_id=request_id, attempt_id=attempt_id)
        return list(self._call("GET", "/deliveries", params=params)["deliveries"])

    def calls(self) -> dict[str, Any]:
        """Pax8 API call counts: ``total``, ``by_operation``, ``by_environment``."""
        return dict(self._call("GET", "/calls"))

    def reset_calls(self) -> None:
        """Zero the call counters."""
        self._call("POST", "/calls/reset", json={})

    def expire_tokens(self) -> int:
        """Invalidate every token issued so far; how many there were."""
        return int(self._call("POST", "/tokens/expire", json={})["expired"])

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules with their ``remaining`` and ``fired`` counts."""
        return list(self._call("GET", "/faults")["rules"])

    def set_faults(self, rules: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace every fault rule."""
        return list(self._call("PUT", "/faults", json={"rules": list(rules)})["rules"])

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Append one fault rule (``add_fault(path="/v1/token", action="error", status=503)``)."""
        return dict(self._call("POST", "/faults", 201, json=rule))

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "/faults", json={})

    def wait_for_attempts(
        self,
        request_id: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll a request's attempts until ``predicate(attempts)`` holds; return them."""
        seen: list[list[dict[str, Any]]] = [[]]

        def check() -> bool:
            seen[0] = list(self.request(request_id)["attempts"])
            return predicate(seen[0])

        wait_until(check, timeout, message=lambda: f"attempts of {request_id}: {seen[0]}")
        return seen[0]

    # -- lifetime ---------------------------------------------------------------------------

    def stop(self) -> int | None:
        """Close the clients and stop the process; its exit code."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        self.control.close()
        return self.proc.stop()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _params(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


# -- a stand-in vendor receiver --------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the listener got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class WebhookListener(LoopbackServer):
    """A threaded HTTP server on 127.0.0.1 that records requests and answers scripted codes.

    ``statuses`` are answered in order, one per request; after the list runs out every
    request gets ``default_status``. ``delay`` seconds of sleep before answering simulate a
    slow receiver.
    """

    def __init__(
        self,
        statuses: Sequence[int] = (),
        default_status: int = 200,
        delay: float = 0.0,
    ) -> None:
        self._lock = threading.Lock()
        self._statuses = list(statuses)
        self.default_status = default_status
        self.delay = delay
        self.received: list[Received] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = listener._record(
                    Received("POST", self.path, dict(self.headers.items()), body)
                )
                if listener.delay:
                    time.sleep(listener.delay)
                payload = b'{"ok": true}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the sandbox gave up waiting (a delivery timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        super().__init__(Handler, name="webhook-listener")

    def _record(self, received: Received) -> int:
        with self._lock:
            self.received.append(received)
            return self._statuses.pop(0) if self._statuses else self.default_status

    @property
    def url(self) -> str:
        """Where to point a webhook configuration."""
        return f"http://127.0.0.1:{self.port}/webhooks/pax8"

    def bodies(self) -> list[Any]:
        """Every JSON body received so far."""
        with self._lock:
            return [r.json() for r in self.received]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Wait until at least ``count`` requests arrived; return them all."""
        wait_until(
            lambda: len(self.received) >= count,
            timeout,
            message=lambda: f"{len(self.received)} of {count} webhooks arrived",
        )
        with self._lock:
            return list(self.received)


def notification_from(dump: dict[str, Any], simulation: bool = False) -> dict[str, Any]:
    """The Provision Notification Pax8 would send for a request the sandbox dumped
    (``GET /sandbox/requests/ID``): its latest detail and attempt."""
    return {
        "isSimulation": simulation,
        "provisionRequest": dump["provisionRequest"],
        "provisionDetail": dump["details"][-1],
        "provisionAttempt": dump["attempts"][-1],
    }
