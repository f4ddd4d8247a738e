"""Start, watch and stop the real processes the tests run against.

Every process writes its output to a log file in the test's temporary directory; a
failing wait prints the tail of that log so a red test says why.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

from cli.procs import Child, child_env, procfile_lines
from cli.redis_server import free_port, port_open

ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")

__all__ = ["ROOT", "GiveUp", "Proc", "free_port", "port_open", "procfile_command", "wait_until"]


class GiveUp(AssertionError):
    """Raised by a polled condition that can never become true (e.g. its process died)."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return it or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except GiveUp:
            raise
        except Exception as exc:  # noqa: BLE001 - polled conditions may fail while starting
            last_error = exc
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            if last_error is not None:
                text += f" (last error: {last_error!r})"
            raise AssertionError(f"after {timeout:g}s: {text}")
        time.sleep(interval)


def procfile_command(name: str, procfile: Path = ROOT / "Procfile") -> str:
    """The command of the Procfile line ``name`` (tests start processes exactly as users do)."""
    lines = procfile_lines(procfile)
    if name not in lines:
        raise KeyError(f"no {name!r} line in {procfile}")
    return lines[name]


class Proc(Child):
    """A child process (its own session, as ``fulfill dev`` runs them) with test helpers."""

    def __init__(
        self,
        name: str,
        command: str | list[str],
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path = ROOT,
    ) -> None:
        self.command = command
        argv = ["bash", "-c", f"exec {command}"] if isinstance(command, str) else command
        super().__init__(
            name, argv, child_env(env), Path(log_dir) / f"{name}.log", cwd=cwd, append=True
        )

    def log(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of the process output."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        """A header and the log tail, for failure messages."""
        return f"--- {self.name} (pid {self.pid}, rc {self.popen.poll()}) ---\n{self.log()}"

    def wait_http(self, url: str, timeout: float = 30.0, status: int = 200) -> None:
        """Wait until GET ``url`` answers ``status``; fail early if the process died."""

        def ready() -> bool:
            if not self.alive():
                raise GiveUp(f"{self.name} exited at start\n{self.describe()}")
            try:
                return httpx.get(url, timeout=1.0).status_code == status
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, 0.1, message=lambda: f"{url} not ready\n{self.describe()}")

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        """Wait until something listens on ``port``."""

        def ready() -> bool:
            if not self.alive():
                raise GiveUp(f"{self.name} exited at start\n{self.describe()}")
            return port_open(port)

        wait_until(ready, timeout, 0.1, message=lambda: f"port {port} closed\n{self.describe()}")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until ``text`` appears in the process output; fail early if it exits."""

        def logged() -> bool:
            if text in self.log(tail=10_000_000):
                return True
            if not self.alive():
                raise GiveUp(f"{self.name} exited before logging {text!r}\n{self.describe()}")
            return False

        wait_until(logged, timeout, 0.1, message=lambda: f"{text!r} not logged\n{self.describe()}")

    def signal(self, sig: int, group: bool = False) -> None:
        """Send ``sig`` to the process (or to its whole process group)."""
        if group:
            os.killpg(self.popen.pid, sig)
        else:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the group, wait, then SIGKILL what is left; return the exit code."""
        return super().stop(timeout)

    def deploy_stop(self, grace: float) -> bool:
        """Stop it as a deploy does: SIGTERM to the process alone (a container's main
        process), then SIGKILL to all that is left of it once ``grace`` has passed; True if
        it had to be killed."""
        if not self.alive():
            return False
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
            return False
        except subprocess.TimeoutExpired:
            self.kill()
            return True

    def kill(self) -> None:
        """SIGKILL the whole group."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def __repr__(self) -> str:
        cmd = self.command if isinstance(self.command, str) else shlex.join(self.command)
        return f"Proc({self.name!r}, {cmd!r}, pid={self.pid})"
