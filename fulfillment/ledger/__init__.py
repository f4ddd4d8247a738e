"""The ledger: one Redis record per provision request, written only by Lua scripts.

* :mod:`~fulfillment.ledger.refs`: which order a record is (scope and checked id).
* :mod:`~fulfillment.ledger.states`: the states and what each transition can answer.
* :mod:`~fulfillment.ledger.keys`: every Redis key name of the project.
* :mod:`~fulfillment.ledger.records`: the record, the notice and a transition's answer.
* :mod:`~fulfillment.ledger.store`: :class:`Ledger`, the only writer: every write is a Lua
  script (``lua/*.lua``, read once by :mod:`~fulfillment.ledger.scripts`).
* :mod:`~fulfillment.ledger.queries`: :class:`LedgerReader`, every read (a ``Ledger`` is one).
* :mod:`~fulfillment.ledger.locks`: a Redis lock with an owner token.
* :mod:`~fulfillment.ledger.events`: one log line per state change.

Belongs here: everything that knows how an order is kept in Redis. Imports nothing of
``fulfillment`` but :mod:`fulfillment.runtime`. The names below are its public face.
"""

from fulfillment.ledger.keys import Keys
from fulfillment.ledger.queries import LedgerReader
from fulfillment.ledger.records import (
    RECONCILE_TOTALS,
    AmbiguousId,
    Attempt,
    Change,
    Notice,
    Record,
    Scan,
)
from fulfillment.ledger.states import STATES
from fulfillment.ledger.store import OUTCOME_TOKEN_SECONDS, Ledger

__all__ = [
    "OUTCOME_TOKEN_SECONDS",
    "RECONCILE_TOTALS",
    "STATES",
    "AmbiguousId",
    "Attempt",
    "Change",
    "Keys",
    "Ledger",
    "LedgerReader",
    "Notice",
    "Record",
    "Scan",
]
