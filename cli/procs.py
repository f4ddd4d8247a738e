"""Child processes of ``fulfill dev``: the Procfile, the embedded Redis, and clean stops.

Every child runs in its own session, so a Ctrl-C in the terminal reaches ``fulfill dev``
alone, which then stops the children in order: the processes that use Redis first, Redis
last (its AOF flushed on SIGTERM).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from honcho.environ import parse_procfile

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def find_procfile() -> Path:
    """The project's Procfile (beside the installed sources), else ./Procfile."""
    for candidate in (PROJECT_ROOT / "Procfile", Path.cwd() / "Procfile"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "no Procfile found beside the sources or in the current directory; run fulfill dev "
        "from a clone of the project (pip install -e .)"
    )


def dev_procfile(procfile: Path) -> Path:
    """``Procfile.dev`` beside ``procfile``: the development-only processes (the sandbox),
    which production never runs."""
    return procfile.with_name("Procfile.dev")


def procfile_lines(path: Path) -> dict[str, str]:
    """``name: command`` lines of a Procfile, by name (parsed as honcho, which runs it, does)."""
    return dict(parse_procfile(path.read_text()).processes)


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether binding ``host:port`` fails (someone listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child: ours, ``extra``, this Python's scripts first on PATH."""
    env = {**os.environ, **extra, "PYTHONUNBUFFERED": "1"}
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = scripts + os.pathsep + env.get("PATH", "")
    return env


class Child:
    """A process in its own session, its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        append: bool = False,
        new_session: bool = True,
    ) -> None:
        self.name = name
        self.log_path = log_path
        # Closed by stop(); a fresh log per run unless ``append``.
        self._log: IO[bytes] = open(log_path, "ab" if append else "wb")  # noqa: SIM115
        self._own_group = new_session
        self.popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        """The child's pid (also its process group id)."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of its output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM its process group, wait up to ``timeout``, then SIGKILL the group."""
        if self.alive():
            self._signal(signal.SIGCONT)  # a frozen (SIGSTOPped) child must hear the TERM
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        return self.popen.returncode

    def _signal(self, sig: int) -> None:
        """``sig`` to its process group (it leads one), or to it alone if it shares ours."""
        try:
            if self._own_group:
                os.killpg(self.pid, sig)
            else:
                self.popen.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass
