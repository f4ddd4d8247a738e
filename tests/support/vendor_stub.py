"""A vendor's HTTP endpoint on loopback, for the ``http`` adapter: scripted, counted, idempotent.

It plays a small real vendor: NetNew and TrialCreate create a subscription, the other
subscription types need one it knows (else a 404 with a message a partner can act on),
PartnerEnrollment enrolls a partner. A ChangeProduct whose ``previousRoute`` is another route
than its ``route`` (the old product lives in another backend of the vendor:
``docs/routes.md``) takes the subscription over: it is created here, as the new backend of
such a vendor must. How it treats ``Idempotency-Key`` is chosen per stub
(:class:`Keys`), because that is where real vendors differ:

* ``AT_START`` (the IETF Idempotency-Key draft, Stripe): the key is taken when work starts;
  a call with a key still in progress gets ``409`` with Retry-After, a key used before with
  another body ``422``, a finished key its stored answer;
* ``ON_COMPLETION``: the answer is stored when the work finishes; a call that arrives while
  the first is still working does the work again;
* ``IGNORED``: every call does the work.

:meth:`VendorStub.provisionings` counts work really done (each success that created or
changed something), not keys, so a double provisioning shows. Answers are scripted per
call (status, body, a hang before anything, work time, a delay after the work, a trickled
answer; ``default`` when nothing is scripted), then fall back to the rules above.
:meth:`VendorStub.hold` keeps chosen answers back until :meth:`VendorStub.release` (a
vendor slow to answer one host), and each call records the caller's address. Each answer
closes its connection unless the stub is built with ``keep_alive`` (what a vendor's API
behind a production server does; the benchmarks use it): :attr:`VendorStub.connections`
counts the connections it accepted.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackServer

_CREATES = {"NetNew", "TrialCreate"}
_CHANGES = {"Update", "Deprovision", "TrialConvert", "ChangeProduct", "Renewal"}
IDLE_SECONDS = 75.0
"""How long a kept-alive connection may stay idle (``keep_alive``): nginx's default."""


class Keys(StrEnum):
    """How the vendor honours ``Idempotency-Key``."""

    AT_START = "at-start"
    ON_COMPLETION = "on-completion"
    IGNORED = "ignored"


@dataclass
class Script:
    """One scripted answer."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_before: float = 0.0  # hang before doing anything (not even the key is looked at)
    work: float | None = None  # the work takes this long (None: the stub's default)
    delay_after: float = 0.0  # the work is done (and recorded): wait, then answer
    trickle: float = 0.0  # send the answer's body one byte per ``trickle`` seconds


@dataclass
class Call:
    """One request the vendor received."""

    key: str
    order: dict[str, Any]
    headers: dict[str, str]
    status: int
    at: float
    peer: str = ""  # the caller's address (which host called, with several)
    path: str = ""  # the URL's path (callers told apart by their VENDOR_HTTP_URL)


Hold = Callable[[Call], bool]


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class VendorStub(LoopbackServer):
    """A threaded HTTP server that plays the vendor."""

    def __init__(
        self,
        token: str | None = None,
        keys: Keys = Keys.AT_START,
        work: float = 0.0,
        retry_after: str = "1",
        default: Script | None = None,
        host: str = "127.0.0.1",
        double_every: int = 0,
        keep_alive: bool = False,
    ) -> None:
        self.token = token
        self.keep_alive = keep_alive
        """Keep each connection open for the caller's next call, as a vendor's API behind a
        production server does (``False``: every answer closes its connection, so each call
        opens a new one)."""
        self.connections = 0  # connections accepted, ever
        self.double_every = double_every
        """When > 0: a vendor that slows under load, its ``delay_after`` doubled for every
        ``double_every`` other calls in flight when a call arrives."""
        self.in_flight = 0  # calls being handled now
        self.max_in_flight = 0  # the most handled at once, ever
        self.default = default or Script()  # the answer when nothing is scripted
        self.keys = keys
        self.work = work
        self.retry_after = retry_after
        self.calls: list[Call] = []  # every call, recorded when it is answered
        self.arrivals: list[tuple[str | None, float]] = []  # (request id, time) per call
        self.done: list[dict[str, Any]] = []  # every provisioning really carried out
        self.script: deque[Script] = deque()
        self._stored: dict[str, tuple[str, _Answer]] = {}  # key → (body hash, answer)
        self._started: dict[str, str] = {}  # key → body hash, while its work runs (AT_START)
        self._subscriptions: dict[str, dict[str, str]] = {}
        self._hold: Hold | None = None
        self._held: list[tuple[Call, threading.Event]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An idle kept-alive connection is closed after nginx's default keepalive_timeout
            # (longer than httpx's 5 s keep-alive expiry, so the caller closes it first).
            timeout = IDLE_SECONDS if keep_alive else None

            def setup(self) -> None:
                super().setup()
                with stub._lock:
                    stub.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                stub._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, name="vendor-stub", host=host)

    def load_delay(self, delay: float, others: int) -> float:
        """``delay`` for a call that arrives with ``others`` calls in flight."""
        if self.double_every <= 0:
            return delay
        return delay * 2 ** (others / self.double_every)

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
        """Every provisioning the vendor really carried out (repeats that did work included)."""
        with self._lock:
            done = list(self.done)
        return [p for p in done if request_id is None or p["requestId"] == request_id]

    def arrived(self, request_id: str) -> list[float]:
        """When each call about ``request_id`` came in (before any work or answer)."""
        with self._lock:
            return [at for rid, at in self.arrivals if rid == request_id]

    def hold(self, which: Hold | None) -> None:
        """From now on, keep the answer to every call ``which`` picks (after doing the work)
        until :meth:`release`: a vendor whose answers are slow to come back. ``None``: hold
        no more (what is held stays held until released)."""
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

    # -- one call ------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            others = self.in_flight
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        left = threading.Event()

        def leave() -> None:
            # Before the answer's first byte: a caller that has its answer has already
            # been counted out, so its next call never finds it still counted.
            if not left.is_set():
                left.set()
                with self._lock:
                    self.in_flight -= 1

        try:
            self._answer(handler, others, leave)
        finally:
            leave()

    def _answer(
        self, handler: BaseHTTPRequestHandler, others: int, leave: Callable[[], None]
    ) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) or b"{}"
        order = json.loads(raw)
        with self._lock:
            self.arrivals.append(((order.get("provisionRequest") or {}).get("id"), time.time()))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        key = headers.get("idempotency-key", "")
        fingerprint = hashlib.sha256(json.dumps(order, sort_keys=True).encode()).hexdigest()
        if self.token and headers.get("authorization") != f"Bearer {self.token}":
            leave()
            self._send(handler, _Answer(401, {"message": "bad token"}), 0.0)
            return
        with self._lock:
            # A key the vendor answers by itself (finished, or still in progress) takes no
            # scripted answer: the script is for the calls that do work.
            keyed = self.keys is not Keys.IGNORED and (key in self._stored or key in self._started)
            script = None if keyed else (self.script.popleft() if self.script else None)
        script = script or self.default
        if script.delay_before:
            time.sleep(script.delay_before)
        answer = self._begin(key, fingerprint)
        if answer is None:
            answer = self._work(key, fingerprint, order, script)
            if script.delay_after:
                time.sleep(self.load_delay(script.delay_after, others))
        peer = str(handler.client_address[0])
        call = self._record(key, order, headers, answer.status, peer, handler.path)
        self._wait_if_held(call)
        leave()
        self._send(handler, answer, script.trickle, self.keep_alive)

    def _begin(self, key: str, fingerprint: str) -> _Answer | None:
        """The answer the key alone decides (a replay, 409, 422), or None: do the work."""
        if self.keys is Keys.IGNORED:
            return None
        with self._lock:
            stored = self._stored.get(key)
            started = self._started.get(key) if self.keys is Keys.AT_START else None
            if self.keys is Keys.AT_START and (stored or started):
                if (stored[0] if stored else started) != fingerprint:
                    return _Answer(
                        422,
                        {"message": "This Idempotency-Key was used with a different request."},
                    )
            if stored:
                return stored[1]
            if started:
                return _Answer(
                    409,
                    {"message": "A request with this Idempotency-Key is still being processed."},
                    {"Retry-After": self.retry_after},
                )
            if self.keys is Keys.AT_START:
                self._started[key] = fingerprint
        return None

    def _work(self, key: str, fingerprint: str, order: dict[str, Any], script: Script) -> _Answer:
        """Carry the order out (or answer as scripted); store the outcome as the keys say."""
        transient = script.status == 429 or script.status >= 500
        if not transient:
            time.sleep(self.work if script.work is None else script.work)
        with self._lock:
            if script.status != 200 or script.body is not None:
                answer = _Answer(script.status, script.body or {}, dict(script.headers))
                if script.status < 300:
                    self._count(key, order, answer.body)
            else:
                answer = self._apply(key, order)
            self._started.pop(key, None)
            if not transient and self.keys is not Keys.IGNORED:
                self._stored.setdefault(key, (fingerprint, answer))
        return answer

    def _apply(self, key: str, order: dict[str, Any]) -> _Answer:
        """The vendor's rules (under the lock)."""
        request = order.get("provisionRequest") or {}
        kind = order.get("type")
        subscription = str(request.get("subscriptionId") or "")
        if kind in _CREATES:
            vendor_id = f"vsub-{uuid.uuid4().hex[:12]}"
            self._subscriptions[subscription] = {"id": vendor_id, "status": "active"}
            body: dict[str, Any] = {"externalProvisionerSubscriptionId": vendor_id}
        elif kind == "ChangeProduct" and order.get("previousRoute") not in (
            None,
            order.get("route"),
        ):
            vendor_id = f"vsub-{uuid.uuid4().hex[:12]}"
            self._subscriptions[subscription] = {"id": vendor_id, "status": "active"}
            body = {"externalProvisionerSubscriptionId": vendor_id}
        elif kind in _CHANGES:
            known = self._subscriptions.get(subscription)
            if known is None or known["status"] == "cancelled":
                why = "is unknown to the vendor" if known is None else "was cancelled already"
                return _Answer(
                    404,
                    {
                        "message": f"Subscription {subscription} {why}; it must be created "
                        "(NetNew or TrialCreate) first."
                    },
                )
            if kind == "Deprovision":
                known["status"] = "cancelled"
            body = {"externalProvisionerSubscriptionId": known["id"]}
        else:
            body = {
                "externalProvisionerPartnerId": f"vpa-{uuid.uuid4().hex[:12]}",
                "externalProvisionerPartnerEnrollmentId": f"venr-{uuid.uuid4().hex[:12]}",
            }
        body["metadata"] = {"vendor": "stub", "type": kind}
        self._count(key, order, body)
        return _Answer(200, body)

    def _count(self, key: str, order: dict[str, Any], body: dict[str, Any]) -> None:
        self.done.append(
            {
                "requestId": (order.get("provisionRequest") or {}).get("id"),
                "key": key,
                "type": order.get("type"),
                "answer": body,
                "at": time.time(),
            }
        )

    def _record(
        self,
        key: str,
        order: dict[str, Any],
        headers: dict[str, str],
        status: int,
        peer: str,
        path: str = "",
    ) -> Call:
        call = Call(key, order, headers, status, time.time(), peer, path)
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
    def _send(
        handler: BaseHTTPRequestHandler, answer: _Answer, trickle: float, keep: bool = False
    ) -> None:
        data = json.dumps(answer.body).encode()
        lines = [f"HTTP/1.1 {answer.status} Stub", "Content-Type: application/json"]
        lines += [f"Content-Length: {len(data)}"] + ([] if keep else ["Connection: close"])
        lines += [f"{name}: {value}" for name, value in answer.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        # Kept open only when the caller did not ask to close it (http.server's own rule).
        handler.close_connection = handler.close_connection or not keep
        try:
            if not trickle:
                handler.wfile.write(head + data)
                return
            handler.wfile.write(head)
            for index in range(len(data)):
                handler.wfile.flush()
                time.sleep(trickle)
                handler.wfile.write(data[index : index + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the adapter gave up (its deadline) or its worker was killed
