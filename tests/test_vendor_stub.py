"""The vendor stub holds a burst of connections as a production server does.

``bench.slow_vendor``'s two gevent workers put 200 calls at once on the stub. With
socketserver's listen backlog of 5, the connections that came while its serving thread was
busy (waiting for the GIL) overflowed the accept queue: the kernel dropped their SYNs (a
second's delay each) and reset some (``ECONNRESET`` mid-call, which the ``http`` adapter
rightly reads as "no answer" and retries only after the call's deadline). No vendor behind
nginx or gunicorn (backlogs 511 and 2048) does that, so the stub must not either.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time

import httpx

from tests.support.vendor_stub import Script, VendorStub

BURST = 250


def _connect_all(port: int, count: int, within: float) -> list[socket.socket]:
    """Open ``count`` connections at once; those the kernel completed within ``within`` s."""
    pending: dict[socket.socket, None] = {}
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE, sock)
        pending[sock] = None
    done: list[socket.socket] = []
    deadline = time.monotonic() + within
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(deadline - time.monotonic()):
            sock = key.data
            selector.unregister(sock)
            del pending[sock]
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done.append(sock)
    for sock in pending:
        selector.unregister(sock)
        sock.close()
    selector.close()
    return done


def test_a_burst_of_connections_waits_for_a_busy_stub_and_is_answered() -> None:
    body = json.dumps({"type": "NetNew", "provisionRequest": {"id": "burst"}}).encode()
    with VendorStub() as stub:
        # The serving thread stops accepting (as when it waits for the GIL); the listening
        # socket stays open, so the kernel's accept queue alone holds what arrives.
        stub.server.shutdown()
        connected = _connect_all(stub.port, BURST, within=0.5)
        try:
            assert len(connected) == BURST, f"{len(connected)} of {BURST} connections accepted"
            for index, sock in enumerate(connected):
                sock.setblocking(True)
                sock.settimeout(10)
                head = (
                    f"POST /orders HTTP/1.1\r\nHost: stub\r\nIdempotency-Key: k{index}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                sock.sendall(head.encode() + body)
            threading.Thread(
                target=stub.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
            answers = [sock.recv(64).split(b"\r\n", 1)[0] for sock in connected]
        finally:
            for sock in connected:
                sock.close()
        assert answers == [b"HTTP/1.1 200 Stub"] * BURST
        assert stub.connections == BURST


def test_keep_alive_serves_many_calls_on_one_connection() -> None:
    with VendorStub(default=Script(), keep_alive=True) as stub, httpx.Client() as client:
        for index in range(5):
            order = {"type": "NetNew", "provisionRequest": {"id": f"r{index}"}}
            answer = client.post(stub.url, json=order, headers={"Idempotency-Key": f"k{index}"})
            assert answer.status_code == 200
            assert "close" not in answer.headers.get("connection", "")
        assert stub.connections == 1
        assert len(stub.provisionings()) == 5


def test_without_keep_alive_each_call_has_its_own_connection() -> None:
    with VendorStub() as stub, httpx.Client() as client:
        for index in range(3):
            order = {"type": "NetNew", "provisionRequest": {"id": f"r{index}"}}
            answer = client.post(stub.url, json=order, headers={"Idempotency-Key": f"k{index}"})
            assert answer.headers["connection"] == "close"
        assert stub.connections == 3
