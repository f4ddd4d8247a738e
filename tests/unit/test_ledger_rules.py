"""The ledger's rules that hold by construction, checked on the source.

* Nothing in ``fulfillment/`` writes to Redis with a plain command: every write is a Lua
  script the store runs (``fulfillment/ledger/store.py``), so a record is never half-written.
  The two exceptions are named in the store's docstring: the counter a durable write
  increments before its ``WAIT``, and the ``BLPOP`` that takes an outcome token (a script
  cannot block).
  Usage reporting's store (``fulfillment/usage/store.py``) is held to the same rule: it
  writes only through its own scripts in ``fulfillment/usage/lua/``, with no exception.
* Every script has its header, and the record scripts' prelude lists the states in the
  enum's order (``tests/unit/test_construction.py``).
"""

from __future__ import annotations

import ast

from tests.support.procs import ROOT

# Redis's write commands, by redis-py's method names (``append`` left out: every list has one).
WRITES = frozenset(
    "blpop brpop brpoplpush decr decrby delete expire expireat getdel getset hdel "
    "hincrby hincrbyfloat hmset hset hsetnx incr incrby incrbyfloat linsert lmove lpop lpush "
    "lrem lset ltrim mset msetnx persist pexpire psetex rename rpop rpush sadd set setex "
    "setnx smove spop srem unlink zadd zincrby zpopmax zpopmin zrem zremrangebyrank "
    "zremrangebyscore".split()
)
ALLOWED = {
    ("fulfillment/ledger/store.py", "incr"),  # the durable writes' counter, before WAIT
    ("fulfillment/ledger/store.py", "blpop"),  # an outcome token is taken: it blocks
}


def writes_in(tree: ast.AST) -> list[tuple[str, int]]:
    """(command, line) of every call of a Redis write command's method name in ``tree``."""
    return [
        (node.func.attr, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in WRITES
    ]


def test_the_scan_sees_a_plain_write() -> None:
    source = "def f(client, key):\n    client.hincrby(key, 'report_retries', 1)\n"
    assert writes_in(ast.parse(source)) == [("hincrby", 2)]


def test_the_domain_writes_redis_only_through_scripts() -> None:
    found = []
    scanned = set()
    for path in sorted((ROOT / "fulfillment").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        scanned.add(name)
        for command, line in writes_in(ast.parse(path.read_text(), name)):
            if (name, command) not in ALLOWED:
                found.append(f"{name}:{line} {command}")
    # Both stores are scanned, and only the ledger's has exceptions.
    assert {"fulfillment/ledger/store.py", "fulfillment/usage/store.py"} <= scanned
    assert all(name.startswith("fulfillment/ledger/") for name, _ in ALLOWED)
    assert found == [], (
        "write through a script (fulfillment/ledger/lua/, or fulfillment/usage/lua/ for usage "
        "keys): " + ", ".join(found)
    )
