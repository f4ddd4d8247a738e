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

The receiver builds it from a template (:class:`TaskMessages`): the parts of Celery's
message that do not change between two messages of a task are built by ``as_task_v2`` once,
and only the task id, the arguments (and their repr) and the delivery tag are filled in per
message: about 40% of the CPU of building it whole (65 against 165 µs);
``tests/unit/test_messages.py`` checks the two are the same message.

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
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
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


_PLAIN = re.compile(r"[A-Za-z0-9_.:@/+=-]*")
"""Text whose ``repr`` Celery's ``saferepr`` writes the same way (no quote, escape or
non-ASCII character to treat differently)."""

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
"""The third part of a task message's body (no callbacks, chain or chord): as_task_v2's."""


class TaskMessages:
    """Celery task messages of ``app``, each filled in from a template of its task name.

    The same JSON as :func:`task_message` (which stays the reference), without rebuilding
    the parts that never change: Celery's headers and properties are made once per task name
    by ``as_task_v2``; per message, the task id (also the root id and correlation id), the
    arguments, their repr, the origin (it names the process), the caller's reply-to and a
    delivery tag.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._templates: dict[str, dict[str, Any]] = {}
        self._maxlevels = app.conf.task_repr_maxlevels

    def message(self, name: str, args: list[Any], kwargs: dict[str, Any], queue: str) -> str:
        """The JSON a ``send_task`` of ``name`` to ``queue`` would LPUSH onto the queue's
        list (what :func:`task_message` answers, with other ids)."""
        template = self._templates.get(name) or self._template(name)
        task_id = str(uuid.uuid4())
        amqp = self.app.amqp
        headers = {
            **template["headers"],
            "id": task_id,
            "root_id": task_id,
            "argsrepr": self._repr(args or (), amqp.argsrepr_maxsize),  # as_task_v2's ()
            "kwargsrepr": self._repr(kwargs, amqp.kwargsrepr_maxsize),
            "origin": anon_nodename(),  # the pid changes when gunicorn forks its workers
        }
        body = dumps((args, kwargs, _EMBED))
        envelope = {
            **template["envelope"],
            "body": base64.b64encode(body.encode()).decode(),
            "headers": headers,
            "properties": {
                **template["properties"],
                "correlation_id": task_id,
                "reply_to": self.app.thread_oid,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return str(dumps(envelope))

    def _template(self, name: str) -> dict[str, Any]:
        template: dict[str, Any] = json.loads(task_message(self.app, name, [], {}, ""))
        self._templates[name] = template
        template["envelope"] = {
            key: value
            for key, value in template.items()
            if key not in ("body", "headers", "properties")
        }
        return template

    def _repr(self, value: list[Any] | tuple[()] | dict[str, Any], maxsize: int) -> str:
        """Celery's ``saferepr`` of the arguments; plain ``repr`` where it is the same text
        (short strings of plain characters, booleans), ten times cheaper."""
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        if all(
            isinstance(item, bool) or (isinstance(item, str) and _PLAIN.fullmatch(item))
            for item in items
        ):
            text = repr(value)
            if len(text) < maxsize:
                return text
        return str(saferepr(value, maxsize, maxlevels=self._maxlevels))


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
