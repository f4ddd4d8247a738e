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

:func:`order_of` reads the other way: which order a delivered message is for, so the
transport can record it beside the message's holder (``worker/broker.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from celery import Celery
from kombu.utils.json import dumps

from fulfillment.ledger.refs import Ref
from fulfillment.names import PROVISION_TASKS, REPORT

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
