"""A vendor's HTTP endpoint on loopback, for the ``http`` adapter: scripted, counted, idempotent.

Like a careful real vendor, it honours ``Idempotency-Key``: the first completed answer
for a key is stored and replayed for every repeat, and only a key's first 2xx counts as
a provisioning. Answers are scripted per call (status, body, delay before answering,
delay after doing the work), then fall back to a default 200 with external ids.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackServer


@dataclass
class Script:
    """One scripted answer."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_before: float = 0.0  # hang before doing anything (a vendor that hangs)
    delay_after: float = 0.0  # do the work, then wait before answering


@dataclass
class Call:
    """One request the vendor received."""

    key: str
    order: dict[str, Any]
    headers: dict[str, str]
    status: int
    at: float
    peer: str = ""  # the caller's address (which host called, with several)


Hold = Callable[[Call], bool]


class VendorStub(LoopbackServer):
    """A threaded HTTP server that plays the vendor."""

    def __init__(
        self, token: str | None = None, default: Script | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.token = token
        self.default = default or Script()  # the answer when nothing is scripted
        self.calls: list[Call] = []
        self.provisioned: dict[str, dict[str, Any]] = {}  # idempotency key → stored answer
        self.script: deque[Script] = deque()
        self._hold: Hold | None = None
        self._held: list[tuple[Call, threading.Event]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                stub._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, name="vendor-stub", host=host)

    @property
    def url(self) -> str:
        """Where the ``http`` adapter should POST (``VENDOR_HTTP_URL``)."""
        return f"http://{self.host}:{self.port}/orders"

    def then(self, *scripts: Script) -> VendorStub:
        """Queue answers for the next calls."""
        with self._lock:
            self.script.extend(scripts)
        return self

    def provisionings(self, request_id: str | None = None) -> list[dict[str, Any]]:
        """Distinct orders the vendor really carried out (one per idempotency key)."""
        with self._lock:
            done = list(self.provisioned.values())
        return [p for p in done if request_id is None or p["requestId"] == request_id]

    def hold(self, which: Hold) -> None:
        """From now on, keep the answer to every call ``which`` picks (after doing the work)
        until :meth:`release`: a vendor whose answers are slow to come back."""
        with self._lock:
            self._hold = which

    def held(self) -> list[Call]:
        """The calls whose answers are held right now."""
        with self._lock:
            return [call for call, event in self._held if not event.is_set()]

    def release(self, which: Hold | None = None) -> int:
        """Answer the held calls ``which`` picks (all by default); how many."""
        with self._lock:
            chosen = [e for c, e in self._held if not e.is_set() and (which is None or which(c))]
        for event in chosen:
            event.set()
        return len(chosen)

    def close(self) -> None:
        """Answer whatever is still held, then stop serving."""
        with self._lock:
            self._hold = None
        self.release()
        super().close()

    def calls_for(self, request_id: str) -> list[Call]:
        """Every call about ``request_id``, repeats included."""
        with self._lock:
            return [c for c in self.calls if c.order["provisionRequest"]["id"] == request_id]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        order = json.loads(handler.rfile.read(length) or b"{}")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        key = headers.get("idempotency-key", "")
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            self._answer(handler, 401, {"message": "bad token"}, {})
            return
        with self._lock:
            stored = self.provisioned.get(key)
            script = self.script.popleft() if self.script and stored is None else None
        peer = str(handler.client_address[0])
        if stored is not None:
            self._wait_if_held(self._record(key, order, headers, 200, peer))
            self._answer(handler, 200, stored["answer"], {})
            return
        script = script or self.default
        if script.delay_before:
            time.sleep(script.delay_before)
        body = script.body
        if script.status < 300:
            body = body or {
                "externalProvisionerSubscriptionId": f"vsub-{uuid.uuid4().hex[:12]}",
                "metadata": {"vendor": "stub", "type": order.get("type")},
            }
            with self._lock:
                self.provisioned.setdefault(
                    key, {"requestId": order["provisionRequest"]["id"], "answer": body}
                )
        self._wait_if_held(self._record(key, order, headers, script.status, peer))
        if script.delay_after:
            time.sleep(script.delay_after)
        self._answer(handler, script.status, body or {}, script.headers)

    def _record(
        self, key: str, order: dict[str, Any], headers: dict[str, str], status: int, peer: str
    ) -> Call:
        call = Call(key, order, headers, status, time.time(), peer)
        with self._lock:
            self.calls.append(call)
        return call

    def _wait_if_held(self, call: Call, limit: float = 300.0) -> None:
        with self._lock:
            if self._hold is None or not self._hold(call):
                return
            event = threading.Event()
            self._held.append((call, event))
        event.wait(limit)

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the adapter gave up (timeout) or its worker was killed
