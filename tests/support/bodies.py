"""Walking and rewriting JSON bodies, for tests that try every field of a notification."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def field_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path (keys and list indexes) to every value nested inside ``value``."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from field_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from field_paths(item, (*prefix, index))


def with_value(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``body`` with the value at ``path`` replaced by ``value``."""
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy
