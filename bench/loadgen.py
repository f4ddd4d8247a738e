"""A bounded HTTP load generator that runs in its own process: ``python -m bench.loadgen SPEC``.

The benchmarks never load a server from the process they measure in: they write a spec
(JSON) and start one or more of these, then merge what each wrote. Two pacings:

* **open loop** (``rate``): request *i* is due at ``start_at + i / rate``; latency is
  counted from when it was due, not from when it left, so a slow server cannot hide its
  queue by slowing the client down (no coordinated omission);
* **as fast as possible** (no ``rate``): at most ``concurrency`` requests in flight.

Requests come from a JSON-lines file of ``{"id", "path", "body"}`` items, or are generated
from a body template with fresh UUIDs (``{REQUEST_ID}``, ``{DETAIL_ID}``, ``{ATTEMPT_ID}``,
``{COMPANY}``). Connections are kept alive when the server allows it (gunicorn's sync
workers close each one; the sandbox keeps them). A 503, a reset or a timeout is retried
up to ``retries`` times with the same body, after ``Retry-After`` (capped at
``retry_wait``); every try is counted. The result file holds one row per request:
``[id, due, sent, done, status, tries]`` (epoch seconds; status 0 = no answer).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Row = tuple[str, float, float, float, int, int]


@dataclass(frozen=True)
class Item:
    """One request to send."""

    id: str
    path: str
    body: bytes


class Pool:
    """Idle keep-alive connections to one server."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, raw: bytes) -> tuple[int, dict[str, str]]:
        """Send one request; the status and the headers of the answer."""
        while self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, raw)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()  # a kept-alive connection the server closed meanwhile
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self._exchange(reader, writer, raw)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
    ) -> tuple[int, dict[str, str]]:
        try:
            writer.write(raw)
            status_line = await asyncio.wait_for(reader.readline(), self.timeout)
            if not status_line:
                raise asyncio.IncompleteReadError(b"", None)
            version, status, *_ = status_line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                line = await asyncio.wait_for(reader.readline(), self.timeout)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await asyncio.wait_for(reader.readexactly(length), self.timeout)
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return int(status), headers


def _items(spec: dict[str, Any]) -> Iterator[Item]:
    if "items" in spec:
        with open(spec["items"], "rb") as lines:
            for line in lines:
                if line.strip():
                    data = json.loads(line)
                    yield Item(data["id"], data["path"], data["body"].encode())
        return
    generate = spec["generate"]
    template: str = generate["template"]
    for _ in range(int(generate["count"])):
        request_id = str(uuid.uuid4())
        body = (
            template.replace("{REQUEST_ID}", request_id)
            .replace("{DETAIL_ID}", str(uuid.uuid4()))
            .replace("{ATTEMPT_ID}", str(uuid.uuid4()))
            .replace("{COMPANY}", uuid.uuid4().hex[:12])
        )
        yield Item(request_id, generate["path"], body.encode())


async def run(spec: dict[str, Any]) -> list[Row]:
    """Send every item of ``spec``; one row per item."""
    host, port = spec.get("host", "127.0.0.1"), int(spec["port"])
    timeout = float(spec.get("timeout", 30.0))
    retries = int(spec.get("retries", 0))
    retry_wait = float(spec.get("retry_wait", 1.0))
    rate = spec.get("rate")
    extra = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    head = f"Host: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
    pool = Pool(host, port, timeout)
    gate = asyncio.Semaphore(int(spec.get("concurrency", 64)))
    rows: list[Row] = []

    async def send(item: Item, due: float) -> None:
        raw = (
            f"POST {item.path} HTTP/1.1\r\n{head}Content-Length: {len(item.body)}\r\n\r\n"
        ).encode() + item.body
        async with gate:
            sent = time.time()
            status, tries = 0, 0
            while True:
                tries += 1
                wait = retry_wait
                try:
                    status, headers = await pool.request(raw)
                    if status == 503 and headers.get("retry-after", "").isdigit():
                        wait = min(retry_wait, float(headers["retry-after"]))
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    status = 0
                if status not in (0, 503) or tries > retries:
                    break
                await asyncio.sleep(wait)
        rows.append((item.id, due, sent, time.time(), status, tries))

    start = float(spec.get("start_at") or time.time())
    await asyncio.sleep(max(0.0, start - time.time()))
    tasks = []
    for index, item in enumerate(_items(spec)):
        due = start + index / rate if rate else time.time()
        delay = due - time.time()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(item, due)))
    await asyncio.gather(*tasks)
    for _reader, writer in pool.idle:
        writer.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    """Read the spec file named by the first argument; write the rows to its ``out``."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as handle:
        spec = json.load(handle)
    rows = asyncio.run(run(spec))
    with open(spec["out"], "w") as handle:
        json.dump({"rows": rows}, handle)


if __name__ == "__main__":
    main()
