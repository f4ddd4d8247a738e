"""What a newer release left behind, met by this one: a downgrade refused, a message handed back.

* Every process (receiver, worker, beat, console, and the ``fulfill`` commands that touch
  Redis) started on ledger data of a newer schema exits 4 with one line, and the data is as
  it was, byte for byte (a ``DUMP`` of every key before and after).
* A worker given a message of a newer format runs nothing of it and hands it back intact
  (for a newer worker), while a message in 0.1.0's format (no header) is run.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from config.settings import explicit_settings
from config.version import LEDGER_SCHEMA, MESSAGE_FORMAT, __version__
from fulfillment.intake.notifications import parse_pax8
from fulfillment.names import task_name
from pax8.models import RequestType
from tests.support.procs import free_port, wait_until
from tests.support.redis_dump import dump_all
from tests.support.stack import Stack
from vendors.example import ExampleAdapter
from worker.factory import create_celery
from worker.messages import FORMAT_HEADER, task_message

NET_NEW = task_name(RequestType.NET_NEW)
REFUSAL = (
    f"this Redis holds data of schema {LEDGER_SCHEMA + 1}, stamped by 9.0.0; "
    f"this release ({__version__}) reads up to {LEDGER_SCHEMA}: run that release or a later "
    "one, or restore the backup taken before the upgrade (docs/upgrading.md#rolling-back)"
)


def fulfill(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "fulfill"), *args]
    return subprocess.run(command, env=stack.env, capture_output=True, text=True, timeout=60)


def test_every_process_refuses_data_of_a_newer_schema_and_touches_nothing(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, env={"CONSOLE_PORT": str(free_port())})
    try:
        # What a newer release left: its stamp, orders, and a message waiting in a queue
        # (a worker that consumed would change the queue; a receiver that recorded, the index).
        app = create_celery(explicit_settings(redis_url=stack.redis_server.url))
        for _ in range(3):
            notice, _ = parse_pax8(json.dumps(stack.sandbox_notification()).encode())
            raw = task_message(app, NET_NEW, [notice.request_id, notice.detail_id], {}, NET_NEW)
            assert stack.ledger.accept(notice, (NET_NEW, raw)).action == "queued"
        stack.redis().hset(
            "ff:schema",
            mapping={"version": LEDGER_SCHEMA + 1, "release": "9.0.0", "from": LEDGER_SCHEMA},
        )
        before = dump_all(stack.redis())
        assert stack.redis().llen(NET_NEW) == 3

        extra = {
            "web": {"PORT": str(free_port()), "BIND_HOST": "127.0.0.1"},
            "worker": {"PORT": str(free_port())},
            "beat": {"BEAT_SCHEDULE_FILE": str(tmp_path / "beat")},
            "console": {"CONSOLE_ANONYMOUS": "true"},
        }
        for line, env in extra.items():
            proc = stack.start(line, line, **env)
            code = proc.popen.wait(60)
            output = proc.log(tail=10**6)
            refusals = [text for text in output.splitlines() if "this Redis holds" in text]
            assert code == 4, (line, code, output)
            assert refusals == [f"fulfillment: {REFUSAL}"], output  # one line, nothing else
            print(f"[{line}] exit {code}: {refusals[0]}")

        for args in (["status"], ["reconcile"], ["migrate"], ["replay", "some-order"],
                     ["usage", "status"]):  # fmt: skip
            done = fulfill(stack, *args)
            assert done.returncode == 4, (args, done)
            assert done.stderr == f"fulfill: {REFUSAL}\n" and done.stdout == ""
        checked = fulfill(stack, "migrate", "--check")
        assert checked.returncode == 4 and "schema 2 (stamped by 9.0.0)" in checked.stdout

        assert dump_all(stack.redis()) == before  # every key, byte for byte
        app.pool.force_close_all()
    finally:
        stack.stop()


def test_a_worker_hands_back_a_message_of_a_newer_format_and_runs_0_1_0s(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path)
    app = create_celery(explicit_settings(redis_url=stack.redis_server.url))
    try:
        newer, older = (parse_pax8(json.dumps(stack.sandbox_notification()).encode())[0]
                        for _ in range(2))  # fmt: skip
        messages = {}
        for notice, version in ((newer, MESSAGE_FORMAT + 1), (older, None)):
            args = [notice.request_id, notice.detail_id]
            message = json.loads(task_message(app, NET_NEW, args, {"source": "pax8"}, NET_NEW))
            if version is None:
                del message["headers"][FORMAT_HEADER]  # as 0.1.0 wrote it
            else:
                message["headers"][FORMAT_HEADER] = version
            messages[notice.request_id] = message
            assert stack.ledger.accept(notice).action == "provision"
            stack.redis().lpush(NET_NEW, json.dumps(message))
        worker = stack.start_worker(concurrency=1)

        stack.wait_state(older.request_id, "reported")  # 0.1.0's format: run
        wait_until(lambda: "handed back for a newer worker" in worker.log(10**6), 30)
        held = wait_until(lambda: _held(stack, newer.request_id), 30, message="not handed back")
        assert held["headers"][FORMAT_HEADER] == MESSAGE_FORMAT + 1  # intact, header and all
        assert _args(held) == _args(messages[newer.request_id])
        record = stack.record(newer.request_id)
        assert record is not None and record.state == "received" and record.claims == 0
        made = [p["requestId"] for p in ExampleAdapter(client=stack.redis()).provisionings(False)]
        assert made == [older.request_id]  # nothing of the newer message ran
    finally:
        app.pool.force_close_all()
        stack.stop()


def _held(stack: Stack, request_id: str) -> dict[str, Any] | None:
    """The message for ``request_id`` in the queue or held unacknowledged, if any."""
    raw = [*stack.redis().lrange(NET_NEW, 0, -1)]
    raw += [json.loads(v)[0] for v in stack.redis().hvals("unacked")]
    for item in raw:
        message = json.loads(item) if isinstance(item, str) else item
        if _args(message)[0][0] == request_id:
            return dict(message)
    return None


def _args(message: dict[str, Any]) -> Any:
    body = json.loads(base64.b64decode(message["body"]))
    return body[0], body[1]
