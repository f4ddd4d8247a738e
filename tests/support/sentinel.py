"""The whole product on a replicated Redis with automatic failover: :class:`SentinelStack`.

One master, one replica and three sentinels (quorum 2), all redis-server processes on
loopback; the processes get ``REDIS_SENTINELS`` and ``REDIS_SENTINEL_MASTER`` and a
``REDIS_URL`` whose host is closed (port 1), so anything that still talked to
``REDIS_URL`` instead of asking the sentinels would fail at once rather than work until
the first failover. The test's own client asks the sentinels too.

The replica replicates through a :class:`ReplicationLink` (a TCP relay in the test
process) that can hold the master's stream back: a replica that lags, as one across a
slow link does, so that a master killed then leaves writes the replica never saw. On
loopback the stream is otherwise so fast that nothing would ever be lost.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import redis

from cli.redis_server import RedisServer, SentinelServer
from config.settings import build_settings
from fulfillment.runtime.clients import RedisUse, redis_client
from tests.support.procs import wait_until
from tests.support.stack import Stack

MASTER_NAME = "ff-master"
# Where REDIS_URL points: nothing listens on port 1, so only its database number is used.
UNUSED_URL = "redis://127.0.0.1:1/0"


class ReplicationLink:
    """A relay between a replica and its master that can stop passing the master's stream.

    :meth:`hold` keeps what the master sends (the replica falls behind; its own
    acknowledgements still reach the master, which sees a connected replica that confirms
    nothing new); :meth:`cut` drops what was held and closes both sides, as a master that
    died with data still unsent does.
    """

    def __init__(self, master: tuple[str, int]) -> None:
        self.master = master
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.holding = threading.Event()
        self.held = 0  # bytes the replica never got
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="replication-link", daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        """Where the replica is told its master is."""
        return "127.0.0.1", self.port

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                replica, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                master = socket.create_connection(self.master, timeout=5)
            except OSError:
                # The master is gone (killed): the replica retries, and finds it gone again.
                replica.close()
                continue
            master.settimeout(None)
            self._sockets += [replica, master]
            threading.Thread(target=self._pump, args=(master, replica, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(replica, master, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_master: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_master and self.holding.is_set():
                    self.held += len(data)
                    continue
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def hold(self) -> None:
        """Stop passing the master's stream on."""
        self.holding.set()

    def cut(self) -> None:
        """Drop what was held and close the link (the replica sees its master gone)."""
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Stop relaying and release every socket."""
        self._closed.set()
        self.cut()
        self.listener.close()
        for sock in self._sockets:
            sock.close()


class SentinelStack(Stack):
    """A :class:`Stack` whose Redis is a master, a replica and three sentinels.

    ``down_after_ms``: how long the sentinels wait before they call a silent master down
    (Sentinel's ``down-after-milliseconds``); the failover follows within about a second.
    ``password``: the servers' ``requirepass`` (in ``REDIS_URL``); ``sentinel_password``:
    the sentinels' own (``REDIS_SENTINEL_PASSWORD``).
    """

    def __init__(
        self,
        tmp_path: Path,
        env: dict[str, str] | None = None,
        *,
        down_after_ms: int = 1000,
        password: str | None = None,
        sentinel_password: str | None = None,
        **options: Any,
    ) -> None:
        self.down_after_ms = down_after_ms
        self.password = password
        self.sentinel_password = sentinel_password
        self.servers: list[RedisServer] = []
        self.sentinels: list[SentinelServer] = []
        self.link: ReplicationLink | None = None
        super().__init__(tmp_path, env, **options)

    # -- Redis ------------------------------------------------------------------------

    def _start_redis(self, appendfsync: str) -> RedisServer:
        auth = (
            ["--requirepass", self.password, "--masterauth", self.password] if self.password else []
        )
        master = RedisServer(self.tmp_path / "redis-a", appendfsync=appendfsync, options=auth)
        self.link = ReplicationLink(master.address)
        replica = RedisServer(
            self.tmp_path / "redis-b",
            appendfsync=appendfsync,
            replica_of=self.link.address,
            # The replica announces itself: the sentinels reach it directly.
            options=["--replica-announce-ip", "127.0.0.1", *auth],
        )
        self.servers = [master, replica]
        self.sentinels = [
            SentinelServer(
                self.tmp_path / f"sentinel-{n}",
                MASTER_NAME,
                master.address,
                quorum=2,
                down_after_ms=self.down_after_ms,
                # Sentinel repoints a replica whose master is not the one it monitors
                # ("+fix-slave-config") once failover-timeout has passed since it saw it: at
                # 10 s that bypassed the link within a test, and the replica lagged no more.
                # Three minutes (Redis's default) outlasts any test; one failover per stack
                # never meets the timeout's other uses.
                failover_timeout_ms=180_000,
                master_password=self.password,
                password=self.sentinel_password,
            )
            for n in (1, 2, 3)
        ]
        try:
            for server in (*self.servers, *self.sentinels):
                server.start()
            self._wait_settled(master)
        except BaseException:
            self._stop_redis()
            raise
        return master

    def _redis_env(self) -> dict[str, str]:
        env = {
            "REDIS_URL": UNUSED_URL.replace("//", f"//:{self.password}@")
            if self.password
            else UNUSED_URL,
            "REDIS_SENTINELS": ",".join(f"{s.host}:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }
        if self.sentinel_password:
            env["REDIS_SENTINEL_PASSWORD"] = self.sentinel_password
        return env

    def _client(self, server: RedisServer) -> redis.Redis:
        """A direct client of one server (or sentinel), with its password."""
        password = self.sentinel_password if isinstance(server, SentinelServer) else self.password
        return redis.Redis.from_url(
            server.url, password=password, decode_responses=True, socket_timeout=1
        )

    def _redis_client(self) -> redis.Redis:
        settings = build_settings(**{k.lower(): v for k, v in self._redis_env().items()})
        return redis_client(settings, RedisUse.CLI, decode=True)

    def _stop_redis(self) -> None:
        for server in (*self.sentinels, *self.servers):
            server.stop()
        if self.link is not None:
            self.link.close()

    def _wait_settled(self, master: RedisServer, timeout: float = 30.0) -> None:
        """Until the master has its replica online and every sentinel knows the master, the
        replica and the two other sentinels (else a failover could not be agreed on)."""

        def settled() -> bool:
            if self.replicas_online(master) < 1:
                return False
            for sentinel in self.sentinels:
                state = self._sentinel_view(sentinel)
                if state is None or (state["ip"], int(state["port"])) != master.address:
                    return False
                if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                    return False
            return True

        wait_until(settled, timeout, 0.1, message=lambda: f"Sentinel not settled\n{self.about()}")

    # -- looking -----------------------------------------------------------------------

    def _sentinel_view(self, sentinel: SentinelServer) -> dict[str, Any] | None:
        client = self._client(sentinel)
        try:
            masters: dict[str, Any] = client.sentinel_masters()
            return masters.get(MASTER_NAME)
        except redis.RedisError:
            return None
        finally:
            client.close()

    def master_address(self) -> tuple[str, int] | None:
        """Where a majority of the sentinels say the master is."""
        votes: dict[tuple[str, int], int] = {}
        for sentinel in self.sentinels:
            state = self._sentinel_view(sentinel)
            if state is not None and sentinel.alive():
                address = (state["ip"], int(state["port"]))
                votes[address] = votes.get(address, 0) + 1
        for address, count in votes.items():
            if count >= 2:
                return address
        return None

    def master(self) -> RedisServer:
        """The server the sentinels call master now."""
        address = self.master_address()
        for server in self.servers:
            if server.address == address:
                return server
        raise AssertionError(f"no master agreed on: {address}\n{self.about()}")

    def replicas_online(self, server: RedisServer) -> int:
        """Replicas attached to ``server`` and in sync (0 if it is down or not a master)."""
        client = self._client(server)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return 0
        finally:
            client.close()
        if info.get("role") != "master":
            return 0
        return sum(
            1
            for key, value in info.items()
            if key.startswith("slave") and isinstance(value, dict) and value["state"] == "online"
        )

    def replicas_via_link(self) -> int:
        """Servers that replicate from the link's address (1 until a failover)."""
        count = 0
        for server in self.servers:
            client = self._client(server)
            try:
                info = client.info("replication")
            except redis.RedisError:
                continue
            finally:
                client.close()
            if self.link is not None and int(info.get("master_port", 0)) == self.link.port:
                count += 1
        return count

    def about(self) -> str:
        """Roles and the sentinels' logs, for failure messages."""
        lines = []
        for server in self.servers:
            client = self._client(server)
            try:
                role = client.info("replication").get("role")
            except redis.RedisError as exc:
                role = f"down ({type(exc).__name__})"
            finally:
                client.close()
            lines.append(f"{server.address}: {role}")
        for sentinel in self.sentinels:
            lines.append(f"--- {sentinel.log_path}")
            try:
                lines += sentinel.log_path.read_text().splitlines()[-8:]
            except OSError:
                pass
        return "\n".join(lines)

    # -- faults ------------------------------------------------------------------------

    def kill_master(self, lagging: float = 0.0) -> RedisServer:
        """SIGKILL the current master; with ``lagging``, the replica has seen nothing of
        the last ``lagging`` seconds of its stream (:class:`ReplicationLink`), and never
        will: those writes are lost with it."""
        master = self.master()
        if lagging:
            assert self.link is not None and self.link.master == master.address
            # The replica must still replicate through the link, or holding it holds nothing.
            assert self.replicas_via_link() == 1, f"the replica left the link\n{self.about()}"
            self.link.hold()
            time.sleep(lagging)
        master.kill()
        if self.link is not None:
            self.link.cut()
        return master

    def wait_failover(self, old: tuple[str, int], timeout: float = 30.0) -> RedisServer:
        """Until the sentinels name a master other than ``old``; that server."""
        wait_until(
            lambda: (found := self.master_address()) is not None and found != old,
            timeout,
            0.1,
            message=lambda: f"no failover away from {old}\n{self.about()}",
        )
        return self.master()

    def planned_failover(self) -> float:
        """``SENTINEL FAILOVER`` (a planned switch); when it was asked for (monotonic)."""
        client = self._client(self.sentinels[0])
        try:
            asked = time.monotonic()
            client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            return asked
        finally:
            client.close()

    def wait_replicated(self, timeout: float = 60.0) -> float:
        """Until the current master has a replica online again; when (monotonic)."""
        wait_until(
            lambda: self.master_address() is not None and self.replicas_online(self.master()),
            timeout,
            0.2,
            message=lambda: f"no replica back online\n{self.about()}",
        )
        return time.monotonic()
