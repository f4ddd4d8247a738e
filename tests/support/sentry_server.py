"""A tiny Sentry on loopback: accepts envelopes at ``/api/<project>/envelope/`` and keeps them.

Point ``SENTRY_DSN`` at :attr:`SentryServer.dsn`; the SDK's real transport sends real
(gzip-compressed) envelopes here, and the tests read back events and cron check-ins.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackServer


class SentryServer(LoopbackServer):
    """Collects the items of every envelope it receives."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], Any]] = []
        self.envelopes: list[bytes] = []  # every envelope as received, decompressed
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                with collector._lock:
                    collector.envelopes.append(body)
                collector._parse(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, name="sentry-collector")

    @property
    def dsn(self) -> str:
        """A DSN whose events land here."""
        return f"http://publickey@127.0.0.1:{self.port}/1"

    def _parse(self, body: bytes) -> None:
        lines = body.split(b"\n")
        index = 1  # line 0 is the envelope header
        while index < len(lines):
            if not lines[index].strip():
                index += 1
                continue
            header = json.loads(lines[index])
            length = header.get("length")
            rest = b"\n".join(lines[index + 1 :])
            if length is not None:
                payload_bytes = rest[:length]
                consumed = payload_bytes.count(b"\n") + 1
            else:
                payload_bytes = lines[index + 1] if index + 1 < len(lines) else b""
                consumed = 1
            try:
                payload: Any = json.loads(payload_bytes)
            except ValueError:
                payload = payload_bytes
            with self._lock:
                self.items.append((header, payload))
            index += 1 + consumed

    def events(self) -> list[dict[str, Any]]:
        """Error events (messages and exceptions)."""
        with self._lock:
            return [p for h, p in self.items if h.get("type") == "event"]

    def check_ins(self) -> list[dict[str, Any]]:
        """Cron monitor check-ins (``monitor_beat_tasks``)."""
        with self._lock:
            return [p for h, p in self.items if h.get("type") == "check_in"]
