"""The task messages' format version: every message this release sends carries it, and a
worker reads every format up to its own (a missing header is 0.1.0's format 1).

The messages are published for real (kombu onto a real redis-server) and read back raw; a
worker handing back a format it cannot read is ``tests/test_upgrade.py``'s, with a real one.
"""

from __future__ import annotations

import ast
import base64
import json
from typing import Any

import pytest
import redis

from cli.redis_server import RedisServer
from config.version import MESSAGE_FORMAT
from fulfillment.ledger.refs import Ref
from fulfillment.names import RECONCILE, REPORT
from tests.support.procs import ROOT
from tests.unit.conftest import make_settings
from worker.config import celery_config
from worker.factory import create_celery
from worker.messages import FORMAT_HEADER, message_format, readable
from worker.publish import CeleryPublisher


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, 1),  # 0.1.0 wrote no header
        ({}, 1),
        ({FORMAT_HEADER: 1}, 1),
        ({FORMAT_HEADER: "2"}, 2),
        ({FORMAT_HEADER: MESSAGE_FORMAT + 1}, MESSAGE_FORMAT + 1),
        ({FORMAT_HEADER: 0}, None),
        ({FORMAT_HEADER: "-1"}, None),
        ({FORMAT_HEADER: "two"}, None),
        ({FORMAT_HEADER: True}, None),
        ({FORMAT_HEADER: [1]}, None),
    ],
)
def test_a_message_format_is_read_from_its_header(headers: Any, expected: int | None) -> None:
    assert message_format(headers) == expected


def test_a_worker_reads_every_format_up_to_its_own() -> None:
    assert readable(None) and readable({FORMAT_HEADER: MESSAGE_FORMAT})
    assert not readable({FORMAT_HEADER: MESSAGE_FORMAT + 1})
    assert not readable({FORMAT_HEADER: "garbage"})


def test_every_message_this_release_sends_carries_its_format(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # A server of its own: the app's connection pools are closed at the end (kombu keeps
    # producer pools per broker URL, process-wide).
    server = RedisServer(tmp_path_factory.mktemp("formats"), appendonly=False).start()
    redis_url = server.url
    settings = make_settings(redis_url)
    app = create_celery(settings)
    publisher = CeleryPublisher(app, settings.routes)
    ref = Ref.of("pax8", False, "format-check")
    publisher.provision(ref, "NetNew", "d1", "default")
    publisher.report(ref, countdown=None)
    # the receiver's Lua push
    queue, raw = publisher.provision_message(ref, "NetNew", "d2", "default")
    client = redis.Redis.from_url(redis_url)
    try:
        sent = [json.loads(client.lpop(name) or b"{}") for name in (queue, REPORT)]
        sent.append(json.loads(raw))
        for message in sent:
            assert message["headers"][FORMAT_HEADER] == MESSAGE_FORMAT, message["headers"]
            args = json.loads(base64.b64decode(message["body"]))[0]
            assert args[0] == "format-check"
    finally:
        client.close()
        app.pool.force_close_all()
        server.stop()
    # beat sends the reconciliation with it too
    entry = celery_config(settings)["beat_schedule"]["reconcile"]
    assert entry["task"] == RECONCILE
    assert entry["options"]["headers"] == {FORMAT_HEADER: MESSAGE_FORMAT}


def test_every_send_in_the_code_passes_the_headers() -> None:
    """A task sent without ``headers=message_headers()`` would read as 0.1.0's format: the
    scan finds every ``apply_async``/``send_task`` call of the project's code."""
    unmarked = []
    for package in ("cli", "console", "fulfillment", "receiver", "tasks", "worker"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("apply_async", "send_task")
                    and not any(k.arg == "headers" for k in node.keywords)
                ):
                    unmarked.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unmarked == []


# -- the receiver's message template: the same message as Celery builds whole --------------

TEMPLATE_CASES = [
    ("fulfillment.net_new", ["0f8e7d6c-1111-2222-3333-444455556666", "d-1"],
     {"simulation": False, "source": "pax8", "route": "default"}),
    ("fulfillment.update", ["cb-1", "d1"], {"simulation": True, "source": "cloudblue"}),
    ("fulfillment.net_new", [], {}),
    # Not plain text: the repr falls back to Celery's saferepr (quotes, non-ASCII, length).
    ("fulfillment.net_new", ["it's", "é"], {"note": 'a "quoted" \\ value'}),
    ("fulfillment.net_new", ["a" * 2000], {"route": "x" * 1500}),
    ("fulfillment.net_new", ["r", 7], {"nested": {"deep": [1, 2]}}),
]  # fmt: skip


def _normalised(raw: str) -> dict[str, Any]:
    """A message without what differs between any two (its ids)."""
    message: dict[str, Any] = json.loads(raw)
    task_id = message["headers"].pop("id")
    assert message["headers"].pop("root_id") == task_id
    assert message["properties"].pop("correlation_id") == task_id
    message["properties"].pop("delivery_tag")
    return message


@pytest.mark.parametrize(("name", "args", "kwargs"), TEMPLATE_CASES)
def test_the_template_builds_the_message_celery_builds(
    name: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    from worker.messages import TaskMessages, task_message

    app = create_celery(make_settings("redis://127.0.0.1:1/0"))
    try:
        messages = TaskMessages(app)
        queue = f"{name}.q"
        for _ in range(2):  # the first builds the template, the second uses it
            ours = messages.message(name, args, kwargs, queue)
            celerys = task_message(app, name, args, kwargs, queue)
            assert _normalised(ours) == _normalised(celerys)
            assert json.loads(ours)["headers"]["id"] != json.loads(celerys)["headers"]["id"]
    finally:
        app.close()
