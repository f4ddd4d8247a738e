"""The whole product on several hosts: :class:`HostsStack`.

Redis, the receiver and each worker host are network namespaces on one bridge
(:class:`~tests.support.netns.Network`), each with an address the test assigned; the
sandbox (Pax8) and the vendor stub run beside the test process on the "outside" host.
Every process is started from its Procfile line inside its host, with the other hosts'
addresses in its settings, so nothing can assume localhost: a worker that tried
127.0.0.1 for Redis, Pax8 or the vendor would find nothing there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cli.redis_server import RedisServer
from tests.support.netns import OUTSIDE, Host, Network
from tests.support.procs import Proc, free_port
from tests.support.sandbox import SandboxHandle, start_sandbox
from tests.support.stack import Stack

REDIS, WEB = "redis", "web"


class HostsStack(Stack):
    """A :class:`Stack` whose Redis and receiver are hosts of ``network``; workers and
    beats go on whichever host a test names."""

    def __init__(self, tmp_path: Path, network: Network, env: dict[str, str] | None = None) -> None:
        self.network = network
        super().__init__(tmp_path, env)

    def host(self, name: str) -> Host:
        """One host of the network."""
        return self.network.hosts[name]

    def _start_redis(self, appendfsync: str) -> RedisServer:
        host = self.host(REDIS)
        return RedisServer(
            self.tmp_path / "redis",
            appendfsync=appendfsync,
            host=host.address,
            wrapper=host.wrapper,
        ).start()

    def _receiver_host(self) -> str:
        return self.host(WEB).address

    def _start_sandbox(self, options: dict[str, Any]) -> SandboxHandle:
        return start_sandbox(self.tmp_path, host=self.host(OUTSIDE).address, **options)

    def start_receiver(self, **env: str) -> Proc:
        """gunicorn from the Procfile ``web`` line on the web host."""
        proc = self.start(
            "web", "web", wrapper=self.host(WEB).wrapper, PORT=str(self.receiver_port), **env
        )
        proc.wait_http(f"{self.receiver_url}/healthz")
        return proc

    def start_worker_on(self, host: str, name: str, concurrency: int = 2, **env: str) -> Proc:
        """A celery worker from the Procfile ``worker`` line on ``host``."""
        proc = self.start(
            "worker",
            name,
            wrapper=self.host(host).wrapper,
            WORKER_CONCURRENCY=str(concurrency),
            PORT=str(free_port()),
            **env,
        )
        proc.wait_log("ready.", timeout=60)
        return proc

    def start_beat_on(self, host: str, name: str, **env: str) -> Proc:
        """celery beat from the Procfile ``beat`` line on ``host``."""
        env.setdefault("BEAT_SCHEDULE_FILE", str(self.tmp_path / f"{name}-schedule"))
        proc = self.start("beat", name, wrapper=self.host(host).wrapper, **env)
        proc.wait_log("beat: Starting", timeout=60)
        return proc
