"""Celery task messages in kombu's Redis format, for enqueueing inside a Lua script.

The receiver records a notification and enqueues its task in ONE Redis round trip: the
ledger's accept script pushes this message onto the task's queue when (and only when)
it decides the order must be provisioned. Atomic (no order recorded but not queued) and
about twice as fast as a kombu publish after a separate script.

The message is what ``app.send_task(name, args, kwargs, queue=queue)`` puts on Redis:
the headers, properties and body come from Celery's own ``as_task_v2``, serialized the
way kombu's JSON serializer and Redis transport do (body base64-encoded, priority 0,
the default exchange with the queue as routing key). ``tests/unit/test_ledger.py`` checks it
against a message kombu itself published.

**The message format's version** travels in a header, :data:`FORMAT_HEADER`, on every
message this project sends (here, :class:`worker.publish.CeleryPublisher`, and beat's
schedule in ``worker/config.py``); a retry keeps the header of the message it retries. A
header rather than an argument: the arguments are the task function's (a worker of a
release that did not know a new one would fail on it, and Flower shows them), while Celery
hands every header it does not know to the task untouched, so a worker of the previous
release runs a message of this one, which is what a rolling deploy needs. A message without
the header is format 1, as 0.1.0 wrote it (the same arguments). A worker runs every format
up to its own (:func:`readable`); what it cannot read it hands back
(``tasks/base.py``) for a newer worker, and runs nothing of it.

:func:`order_of` reads the other way: which order a delivered message is for, so the
transport can record it beside the message's holder (``worker/broker.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from celery import Celery
from kombu.utils.json import dumps

from config.version import MESSAGE_FORMAT
from fulfillment.ledger.refs import Ref
from fulfillment.names import PROVISION_TASKS, REPORT

_WHOLE = re.compile(r"[0-9]{1,9}")

FORMAT_HEADER = "fulfillment_format"
"""The header that carries a message's format version (absent: format 1, 0.1.0's)."""


def message_headers() -> dict[str, Any]:
    """The headers this release puts on every message it sends."""
    return {FORMAT_HEADER: MESSAGE_FORMAT}


def message_format(headers: Mapping[str, Any] | None) -> int | None:
    """The format of a message with these headers: 1 without the header, None when the
    header is not a positive whole number (nothing this project wrote)."""
    value = (headers or {}).get(FORMAT_HEADER)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value)
    return int(text) if _WHOLE.fullmatch(text) and int(text) > 0 else None


def readable(headers: Mapping[str, Any] | None) -> bool:
    """Whether this release's workers read a message with these headers."""
    version = message_format(headers)
    return version is not None and version <= MESSAGE_FORMAT


ORDER_TASKS = frozenset({*PROVISION_TASKS.values(), REPORT})
"""The tasks whose first argument is a request id (with ``source``, ``simulation`` kwargs)."""


def task_message(
    app: Celery, name: str, args: list[Any], kwargs: dict[str, Any], queue: str
) -> str:
    """The JSON a ``send_task`` of ``name`` to ``queue`` would LPUSH onto the queue's list."""
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(
        task_id, name, args=args, kwargs=kwargs, reply_to=app.thread_oid, ignore_result=None
    )
    message.headers.update(message_headers())  # what send_task(headers=...) adds
    body = dumps(message.body)
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return str(dumps(envelope))


def order_of(payload: dict[str, Any]) -> str:
    """The ref member (``<scope>:<id>``) of the order a delivered message is for, from
    kombu's payload (headers and base64 body); "" for another task or anything malformed
    (the id is checked like any outside value)."""
    try:
        if payload.get("headers", {}).get("task") not in ORDER_TASKS:
            return ""
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, *_ = json.loads(body)
        simulation = kwargs.get("simulation", False) is True
        return Ref.of(str(kwargs.get("source", "pax8")), simulation, args[0]).member
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, binascii.Error):
        return ""
