"""Every command a Redis server executes, with when and for whom (``MONITOR``), collected
in a thread: :class:`Monitor`. For tests that must see a particular client's write arrive,
and for the benchmark that counts what one order costs Redis (commands run inside a Lua
script are reported for the client ``lua``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Seen:
    """One command as MONITOR reported it."""

    at: float  # epoch seconds, when this process read it
    client: str  # the client's address ("lua" inside a script)
    command: str  # the command line, arguments included
    port: str = ""  # the client's port ("" inside a script): with ``client``, one connection

    @property
    def connection(self) -> str:
        """``address:port``: which connection sent it (``lua`` inside a script)."""
        return f"{self.client}:{self.port}" if self.port else self.client


class Monitor:
    """Collects what Redis at ``url`` executes, optionally only for clients at ``address``."""

    def __init__(self, url: str, address: str | None = None) -> None:
        # No socket timeout (redis-py's default is 5 s): a timed-out read would drop the
        # connection, and end the collecting at the first quiet moment. close() ends it.
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=None)
        self.address = address
        self.seen: list[Seen] = []
        self._monitor = self.client.monitor()  # type: ignore[no-untyped-call]  # redis-py
        self._monitor.__enter__()  # sends MONITOR now: nothing is missed from here on
        self._thread = threading.Thread(target=self._run, name="redis-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                entry = self._monitor.next_command()
            except (redis.RedisError, OSError, AttributeError, ValueError):
                return  # closed
            client = str(entry["client_address"])
            if self.address is None or client == self.address:
                self.seen.append(
                    Seen(time.time(), client, str(entry["command"]), str(entry["client_port"]))
                )

    def after(self, moment: float, text: str) -> list[Seen]:
        """Commands seen after ``moment`` (epoch seconds) whose line contains ``text``."""
        return [s for s in self.seen if s.at > moment and text in s.command]

    def close(self) -> None:
        """Stop collecting."""
        self._monitor.connection.disconnect()
        self._thread.join(5)
        self.client.close()
