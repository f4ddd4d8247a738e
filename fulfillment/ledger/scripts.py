"""The ledger's and locks' Lua scripts, read once from ``fulfillment/ledger/lua/*.lua``.

Each file starts with a header naming its ``KEYS`` and ``ARGV``. The scripts that change
one ledger record share ``common.lua`` (the key layout and the helpers), prepended here; the
steps of a migration that rewrite records in batches share ``migrate_common.lua``. Every key
a script touches is passed in ``KEYS``, as Redis's EVAL rules ask; redis-py's
``register_script`` sends each by its SHA1 and loads it once per server.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

LUA = Path(__file__).with_name("lua")


@cache
def lua_source(name: str, record: bool = True) -> str:
    """The source of script ``name``: ``common.lua`` first for a record script."""
    body = (LUA / f"{name}.lua").read_text()
    return (LUA / "common.lua").read_text() + "\n" + body if record else body


def migration_source(body: str) -> str:
    """A migration step's script: ``migrate_common.lua``, then the step's ``body`` (Lua that
    calls ``each_record`` and ends with ``return done(count)``)."""
    return lua_source("migrate_common", record=False) + "\n" + body
