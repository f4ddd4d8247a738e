"""Every Redis key name of the project, built here and nowhere else.

``prefix`` (``ff:`` by default) starts each of ours; a record is named by its
:class:`~fulfillment.ledger.refs.Ref`, ``<scope>:<id>``, whose id was checked against the
id pattern, so no outside value shapes a key::

    ff:req:<scope>:<id>              hash    the record (fields of ledger.records.Record)
    ff:req:<scope>:<id>:attempts     hash    attempt id → {detail, status, at, result}: one
                                             ProvisionResult is owed per acknowledged attempt
    ff:req:<scope>:<id>:history      list    the last 100 state changes, newest first
    ff:req:<scope>:<id>:outcome      list    a wake-up token once the outcome is known (only
                                             for records someone may wait for: CloudBlue's)
    ff:req:<scope>:<id>:report-lock  string  the lock of the run reporting the record
    ff:index                         zset    <scope>:<id> by last update (recent orders)
    ff:state:<state>                 zset    <scope>:<id> by the time it entered the state
    ff:cloudblue:sub:<id>            hash    a CloudBlue subscription's sequence of operations
                                             (which call is a retry: fulfillment.cloudblue)
    ff:lock:reconcile                string  the lock of the reconciliation running now
    ff:reconcile:recent              string  present for 0.9 interval after a run started
                                             (one run per interval, whoever asks)
    ff:reconcile:runs                string  how many reconciliations did work
    ff:reconcile:last                string  the last run's summary (JSON)
    ff:reconcile:stats               hash    every run's figures summed, the duration histogram
    ff:durable-writes                string  a counter each durable transition increments, so
                                             WAIT always confirms the stream up to it
    ff:workers                       zset    worker id → its last heartbeat (Redis time): the
                                             workers alive, and those gone but not yet swept
    ff:workers:gone                  zset    worker id → its last heartbeat: swept workers,
                                             kept a day (what operators are shown)
    ff:broker:holders                hash    delivery tag → "<worker id> <scope>:<id>": who holds
                                             each message of kombu's unacked hash, and for
                                             which order
    ff:liveness:scan                 string  present for one heartbeat interval after a worker
                                             looked for lost messages (one look per interval)

The broker's keys are kombu's: a list per queue, named after it (:mod:`fulfillment.names`),
and :data:`BROKER_UNACKED` with its index :data:`BROKER_UNACKED_INDEX`, which the worker's
transport (``worker/broker.py``) writes together with ``ff:broker:holders`` through the
delivery scripts. The ``example`` vendor keeps its own data under its own names
(``vendors/example.py``): it plays a vendor, not this project. Lua scripts never build a key:
each gets all of its keys in ``KEYS``, in the order :meth:`Keys.record_script_keys` gives
for the record scripts (``lua/common.lua``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fulfillment.ledger.refs import Ref, check_id
from fulfillment.ledger.states import STATES, State

BROKER_UNACKED = "unacked"
"""Kombu's Redis hash of delivered, unacknowledged messages (its default ``unacked_key``);
it also holds the countdown retries a worker keeps until their time comes. Written only by
the delivery scripts (``lua/deliver.lua`` and its siblings), which the worker's transport runs."""

BROKER_UNACKED_INDEX = "unacked_index"
"""Kombu's zset of the same delivery tags by when they were delivered (its visibility
timeout's clock: the consumer's own)."""


@dataclass(frozen=True)
class Keys:
    """The key names under one ``prefix``."""

    prefix: str = "ff:"

    # -- one record ----------------------------------------------------------------------

    def record(self, ref: Ref) -> str:
        """The record's hash."""
        return f"{self.prefix}req:{ref.member}"

    def attempts(self, ref: Ref) -> str:
        """The record's attempts (hash)."""
        return f"{self.record(ref)}:attempts"

    def history(self, ref: Ref) -> str:
        """The record's history (list, newest first)."""
        return f"{self.record(ref)}:history"

    def outcome(self, ref: Ref) -> str:
        """The list a waiter blocks on until the record's outcome is known."""
        return f"{self.record(ref)}:outcome"

    def report_lock(self, ref: Ref) -> str:
        """The lock of the run that reports the record."""
        return f"{self.record(ref)}:report-lock"

    def record_script_keys(self, ref: Ref) -> list[str]:
        """The keys a record script touches, in the order ``common.lua`` expects."""
        return [self.record(ref), self.attempts(ref), self.history(ref), self.index,
                *self.state_sets]  # fmt: skip

    def every_key_of(self, ref: Ref) -> list[str]:
        """Every key a record owns, in the order ``purge.lua`` deletes them."""
        return [self.record(ref), self.attempts(ref), self.history(ref),
                self.report_lock(ref), self.outcome(ref)]  # fmt: skip

    # -- every record ----------------------------------------------------------------------

    @property
    def index(self) -> str:
        """Every record by last update (zset)."""
        return f"{self.prefix}index"

    def state(self, state: State) -> str:
        """The records in ``state``, by when they entered it (zset)."""
        return f"{self.prefix}state:{state}"

    @property
    def state_sets(self) -> list[str]:
        """The state sets, in the order of :data:`~fulfillment.ledger.states.STATES`."""
        return [self.state(state) for state in STATES]

    # -- CloudBlue -------------------------------------------------------------------------

    def cloudblue_sequence(self, subscription_id: str) -> str:
        """A CloudBlue subscription's sequence of operations (hash); the id is checked."""
        return f"{self.prefix}cloudblue:sub:{check_id(subscription_id, 'subscriptionId')}"

    # -- reconciliation --------------------------------------------------------------------

    @property
    def reconcile_lock(self) -> str:
        """The lock of the reconciliation running now."""
        return f"{self.prefix}lock:reconcile"

    @property
    def reconcile_throttle(self) -> str:
        """Present while a reconciliation started within the interval."""
        return f"{self.prefix}reconcile:recent"

    @property
    def reconcile_runs(self) -> str:
        """How many reconciliations did work."""
        return f"{self.prefix}reconcile:runs"

    @property
    def reconcile_last(self) -> str:
        """The last reconciliation's summary (JSON)."""
        return f"{self.prefix}reconcile:last"

    @property
    def reconcile_stats(self) -> str:
        """Every reconciliation's figures summed, and the duration histogram (hash)."""
        return f"{self.prefix}reconcile:stats"

    # -- workers' liveness --------------------------------------------------------------------

    @property
    def workers(self) -> str:
        """Worker id → its last heartbeat, Redis time (zset): alive, or gone and not swept."""
        return f"{self.prefix}workers"

    @property
    def workers_gone(self) -> str:
        """Worker id → its last heartbeat (zset): workers swept after they were gone."""
        return f"{self.prefix}workers:gone"

    @property
    def holders(self) -> str:
        """Delivery tag → ``"<worker id> <ref member>"`` (hash): who holds each unacked
        message, and which order it is for (empty for a task of no order)."""
        return f"{self.prefix}broker:holders"

    @property
    def liveness_scan(self) -> str:
        """Present for one heartbeat interval after a worker looked for lost messages."""
        return f"{self.prefix}liveness:scan"

    # -- replication -----------------------------------------------------------------------

    @property
    def durable_writes(self) -> str:
        """The counter a durable transition increments before its ``WAIT``."""
        return f"{self.prefix}durable-writes"
