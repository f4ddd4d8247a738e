"""The whole product as real processes on loopback, for end-to-end and fault tests.

``Stack`` owns a redis-server, a sandbox (playing Pax8, with its webhooks pointed at the
receiver), and starts receiver, worker and beat processes from the Procfile lines, so
the tests run exactly what users run. Everything is torn down by :meth:`Stack.stop`.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from cli.redis_server import RedisServer
from fulfillment.ledger import Ledger, Record
from fulfillment.ledger.refs import Ref
from tests.support.procs import ROOT, Proc, free_port, procfile_command, wait_until
from tests.support.sandbox import SandboxHandle, notification_from, start_sandbox

PROD_SECRET = "test-production-secret"
SIM_SECRET = "test-simulation-secret"
HEADER = "pax8ApiTokenV1"

# Short limits so faults play out in seconds; the settings check keeps them consistent.
FAST_ENV = {
    "TASK_SOFT_TIME_LIMIT_SECONDS": "20",
    "TASK_TIME_LIMIT_SECONDS": "25",
    "VISIBILITY_TIMEOUT_SECONDS": "40",
    "RETRY_BACKOFF_SECONDS": "0.2",
    "RETRY_BACKOFF_MAX_SECONDS": "2",
    "RECONCILE_INTERVAL_SECONDS": "3600",
    "PAX8_TIMEOUT_SECONDS": "5",
    "LOG_LEVEL": "INFO",
    # Exporters off unless a test asks for them: several stacks and workers share the host.
    "WEB_METRICS_PORT": "0",
    "WORKER_METRICS_PORT": "0",
    "BEAT_METRICS_PORT": "0",
    # No scheduled doctor (it would probe the vendor stub and take a pool process): a test
    # of it sets DOCTOR_INTERVAL_SECONDS itself.
    "DOCTOR_INTERVAL_SECONDS": "0",
}


class Stack:
    """Redis + sandbox + (on demand) receiver, workers and beats."""

    def __init__(
        self,
        tmp_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        redis_appendfsync: str = "everysec",
        sandbox_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.procs: list[Proc] = []
        self.redis_server = self._start_redis(redis_appendfsync)
        self.receiver_port = free_port()
        self.receiver_url = f"http://{self._receiver_host()}:{self.receiver_port}"
        options: dict[str, Any] = {
            # The sandbox keeps connections open, as Pax8 does (a test can ask for the old
            # server that closes each one: ``sandbox_options={"keep_alive": False}``).
            "keep_alive": True,
            "retry_delay": 0.2,
            "webhook_url": f"{self.receiver_url}/webhooks/pax8",
            "webhook_secret": PROD_SECRET,
            "simulation_webhook_url": f"{self.receiver_url}/webhooks/pax8",
            "simulation_webhook_secret": SIM_SECRET,
        }
        options.update(sandbox_options or {})
        self.sandbox: SandboxHandle = self._start_sandbox(options)
        self.env: dict[str, str] = {
            **FAST_ENV,
            **self.sandbox.env(),
            **self._redis_env(),
            "PAX8_WEBHOOK_SECRETS": PROD_SECRET,
            "PAX8_SIMULATION_WEBHOOK_SECRETS": SIM_SECRET,
            "VENDOR_ADAPTER": "example",
            "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
            # Test adapters (tests.support.adapters) are loaded by ``package.module:Class``.
            "PYTHONPATH": str(ROOT),
        }
        self.env.update(env or {})
        self._redis = self._redis_client()
        self.ledger = Ledger(self._redis)
        self.http = httpx.Client(timeout=30.0)

    # -- Redis (a subclass may put a replica and sentinels here) ------------------------

    def _start_redis(self, appendfsync: str) -> RedisServer:
        """Start the stack's Redis."""
        return RedisServer(self.tmp_path / "redis", appendfsync=appendfsync).start()

    def _redis_env(self) -> dict[str, str]:
        """The settings that point every process at the stack's Redis."""
        return {"REDIS_URL": self.redis_server.url}

    def _redis_client(self) -> redis.Redis:
        """The test's own (decoded) client of the stack's Redis."""
        return redis.Redis.from_url(self.redis_server.url, decode_responses=True)

    def _stop_redis(self) -> None:
        self.redis_server.stop()

    # -- where the receiver and the sandbox listen (a subclass may put them elsewhere) --

    def _receiver_host(self) -> str:
        return "127.0.0.1"

    def _start_sandbox(self, options: dict[str, Any]) -> SandboxHandle:
        return start_sandbox(self.tmp_path, **options)

    # -- processes ---------------------------------------------------------------------

    def start(
        self, line: str, name: str | None = None, *, wrapper: Sequence[str] = (), **env: str
    ) -> Proc:
        """Start the Procfile line ``line`` with the stack's environment plus ``env``
        (``wrapper``: a prefix such as ``ip netns exec HOST`` that runs it elsewhere)."""
        command = " ".join([*wrapper, procfile_command(line)])
        proc = Proc(name or line, command, {**self.env, **env}, self.tmp_path)
        self.procs.append(proc)
        return proc

    def start_receiver(self, **env: str) -> Proc:
        """gunicorn from the Procfile ``web`` line, on the port the sandbox delivers to."""
        env.setdefault("BIND_HOST", self._receiver_host())
        proc = self.start("web", "web", PORT=str(self.receiver_port), **env)
        proc.wait_http(f"{self.receiver_url}/healthz")
        return proc

    def start_worker(self, name: str = "worker", concurrency: int = 2, **env: str) -> Proc:
        """A celery worker from the Procfile ``worker`` line; waits until it consumes."""
        proc = self.start(
            "worker", name, WORKER_CONCURRENCY=str(concurrency), PORT=str(free_port()), **env
        )
        proc.wait_log("ready.", timeout=60)
        return proc

    def start_beat(self, name: str = "beat", **env: str) -> Proc:
        """celery beat from the Procfile ``beat`` line."""
        env.setdefault("BEAT_SCHEDULE_FILE", str(self.tmp_path / f"{name}-schedule"))
        proc = self.start("beat", name, **env)
        proc.wait_log("beat: Starting", timeout=60)
        return proc

    def pool_children(self, worker: Proc) -> list[int]:
        """Pids of a worker's pool processes (children of the celery main process)."""
        try:
            return [child.pid for child in psutil.Process(worker.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def kill_pool_child(self, worker: Proc, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the worker's (first) pool process; start such workers with c=1."""
        children = wait_until(lambda: self.pool_children(worker), 10, message="no pool child")
        os.kill(children[0], sig)
        return children[0]

    # -- webhooks ----------------------------------------------------------------------

    def post_webhook(
        self,
        body: dict[str, Any] | bytes,
        secret: str | None = PROD_SECRET,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST a notification to the receiver as Pax8 would."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if secret is not None:
            all_headers[HEADER] = secret
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(
            f"{self.receiver_url}/webhooks/pax8", content=content, headers=all_headers
        )

    def sandbox_notification(
        self, simulation: bool = False, details: dict[str, Any] | None = None, **request: Any
    ) -> dict[str, Any]:
        """A notification for a request the sandbox holds (acknowledged, not delivered).

        Post it with :meth:`post_webhook` to play Pax8 by hand; results land at the sandbox.
        """
        request.setdefault("companyDomain", unique_domain())
        order: dict[str, Any] = {"provisionRequest": request}
        if details is not None:
            order["provisionDetail"] = {"details": details}
        environment = "simulation" if simulation else "production"
        (created,) = self.sandbox.bulk(
            1, environment=environment, order=order, attempt_status="Acknowledged"
        )
        return notification_from(self.sandbox.request(created["id"]), simulation)

    # -- observing ---------------------------------------------------------------------

    def record(self, request_id: Ref | str) -> Record | None:
        """The ledger record of a request (a bare id: the one scope that has it)."""
        return self.ledger.get(request_id)

    def wait_state(self, request_id: Ref | str, *states: str, timeout: float = 30.0) -> Record:
        """Wait until the record is in one of ``states``."""

        def check() -> Record | None:
            record = self.ledger.get(request_id)
            return record if record is not None and record.state in states else None

        return wait_until(
            check,
            timeout,
            message=lambda: (
                f"{request_id} not in {states}: {self.ledger.get(request_id)}\n" + self.describe()
            ),
        )

    def wait_results(
        self, count: int, timeout: float = 60.0, **filters: str
    ) -> list[dict[str, Any]]:
        """Wait until the sandbox holds at least ``count`` results (matching ``filters``)."""

        def enough() -> list[dict[str, Any]] | None:
            found = self.sandbox.results(**filters)
            return found if len(found) >= count else None

        return wait_until(
            enough,
            timeout,
            0.1,
            message=lambda: (
                f"fewer than {count} results: {len(self.sandbox.results(**filters))}"
                + "\n"
                + self.describe()
            ),
        )

    def describe(self) -> str:
        """The log tails of every process, for failure messages."""
        return "\n".join(proc.describe() for proc in self.procs)

    def redis(self) -> redis.Redis:
        """A decoded Redis client on the stack's server."""
        return self._redis

    def stop(self) -> None:
        """Stop every process and the servers."""
        for proc in reversed(self.procs):
            proc.stop()
        self.http.close()
        self.sandbox.stop()
        self._redis.close()
        self._stop_redis()


def notification(
    request_type: str = "NetNew",
    *,
    simulation: bool = False,
    request_id: str | None = None,
    detail_id: str | None = None,
    attempt_id: str | None = None,
    details: dict[str, Any] | None = None,
    **request_fields: Any,
) -> dict[str, Any]:
    """A Provision Notification body with fresh ids (for posting straight to the receiver)."""
    request_id = request_id or str(uuid.uuid4())
    detail_id = detail_id or str(uuid.uuid4())
    company = uuid.uuid4().hex[:10]
    request = {
        "id": request_id,
        "partnerId": str(uuid.uuid4()),
        "partnerName": "Example Partner Name",
        "companyId": str(uuid.uuid4()),
        "companyName": "Example Company Name",
        "companyDomain": f"{company}.example.com",
        "productId": str(uuid.uuid4()),
        "productName": "Product ABC",
        "quantity": 1,
        "subscriptionId": str(uuid.uuid4()),
        "type": request_type,
        "billingTerm": "Monthly",
        **request_fields,
    }
    return {
        "isSimulation": simulation,
        "provisionRequest": request,
        "provisionDetail": {
            "id": detail_id,
            "provisionRequestId": request_id,
            "details": details or {},
        },
        "provisionAttempt": {
            "id": attempt_id or str(uuid.uuid4()),
            "provisionDetailId": detail_id,
            "webhookId": str(uuid.uuid4()),
            "status": "Acknowledged",
        },
    }


def unique_domain() -> str:
    """A company domain nobody uses yet."""
    return f"{uuid.uuid4().hex[:12]}.example.com"
