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
    ff:schema                        hash    the ledger's schema stamp: version, the release that
                                             stamped it, when, what it was migrated from
                                             (fulfillment.ledger.schema)
    ff:migration                     hash    a migration under way: its target, step and cursor
                                             (resumed from there if interrupted)
    ff:lock:migrate                  string  the lock of the migration running now
    ff:workers                       zset    worker id → its last heartbeat (Redis time): the
                                             workers alive, and those gone but not yet swept
    ff:workers:gone                  zset    worker id → its last heartbeat: swept workers,
                                             kept a day (what operators are shown)
    ff:broker:holders                hash    delivery tag → "<worker id> <scope>:<id>": who holds
                                             each message of kombu's unacked hash, and for
                                             which order
    ff:liveness:scan                 string  present for half WORKER_LOST_AFTER_SECONDS after a
                                             worker looked for lost messages (one look then)
    ff:doctor:last                   string  the last scheduled fulfill doctor run's report
                                             (JSON; fulfillment.doctor.store)
    ff:slots:<backend>               zset    claim token → when its lease ends: the vendor
                                             calls in flight at a backend under
                                             VENDOR_MAX_IN_FLIGHT (fulfillment.ledger.slots);
                                             <backend> is a route name, with ``:sim`` for
                                             its simulation backend
    ff:slots:<backend>:waiting       zset    <scope>:<id> → when that order asks again
    ff:slots:<backend>:stats         hash    avg: the mean of the backend's recent calls (ms)

    Usage reporting (fulfillment.usage; its store writes them through fulfillment/usage/lua/;
    <sub> is <scope>:<id>, a job <scope>:<id>:<period>, a period yyyy-MM):

    ff:usage:sub:<sub>                 hash    one subscription (fulfillment.usage.models)
    ff:usage:subs                      zset    <sub> by when it became active
    ff:usage:day:<yyyy-mm-dd>          hash    one day's run: counts, state, its clock
    ff:usage:day:<day>:pending         set     the run's jobs not finished yet
    ff:usage:job:<day>:<job>           hash    one job's claim, attempts and progress
    ff:usage:days                      zset    every run's day by when it was planned
    ff:usage:period:<sub>:<period>     hash    a subscription's period: last post, closed
    ff:usage:closed:<period>           set     <sub> whose closing totals Pax8 has
    ff:usage:posts:<sub>:<period>      list    every post: the lines sent and Pax8's answer
    ff:usage:recent                    list    the latest posts of every subscription
    ff:usage:stats                     hash    running totals (posts, lines, 429s, jobs)
    ff:usage:ratelimit                 string  the shared limiter's state (GCRA)
    ff:usage:lock:run                  string  the run lock (one planner at a time)
    ff:usage:alerted:<period>:<scope>  string  the overdue alert went to Sentry
    ff:usage:overdue                   hash    what the latest overdue check found

Every key of the ledger and of usage reporting starts with the prefix (:attr:`Keys.pattern`):
a Redis without one holds no data of this project (``fulfillment/ledger/schema.py``), and the
schema stamp covers them all. The broker's keys are kombu's: a list per queue, named after it
(:mod:`fulfillment.names`), and :data:`BROKER_UNACKED` with its index
:data:`BROKER_UNACKED_INDEX`, which the worker's transport (``worker/broker.py``) writes
together with ``ff:broker:holders`` through the delivery scripts. The ``example`` vendor keeps
its own data under its own names (``vendors/example.py``): it plays a vendor, not this project.
Lua scripts never build a key: each gets all of its keys in ``KEYS``, in the order
:meth:`Keys.record_script_keys` gives for the record scripts (``lua/common.lua``). A
subscription's or a job's name (:func:`usage_member`, :func:`usage_job`) is built from checked
ids too.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulfillment.ledger.refs import Ref, Scope, check_id
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

    # -- vendor-call slots -----------------------------------------------------------------

    def slots(self, backend: str) -> list[str]:
        """A backend's slot keys: holders, waiters, figures (``backend`` is a route's name,
        checked by the routes file, with ``:sim`` for its simulation backend)."""
        base = f"{self.prefix}slots:{backend}"
        return [base, f"{base}:waiting", f"{base}:stats"]

    # -- the schema ------------------------------------------------------------------------

    @property
    def pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every key of the ledger (all begin with the prefix)."""
        return f"{self.prefix}*"

    @property
    def schema(self) -> str:
        """The schema stamp (hash): version, release, at, from."""
        return f"{self.prefix}schema"

    @property
    def migration(self) -> str:
        """The progress of the migration under way (hash): to, step, cursor, release."""
        return f"{self.prefix}migration"

    @property
    def migrate_lock(self) -> str:
        """The lock of the migration running now."""
        return f"{self.prefix}lock:migrate"

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
        """Present for half the lost-after time after a worker looked for lost messages."""
        return f"{self.prefix}liveness:scan"

    # -- the doctor ----------------------------------------------------------------------

    @property
    def doctor_last(self) -> str:
        """The last scheduled ``fulfill doctor`` run's report (JSON)."""
        return f"{self.prefix}doctor:last"

    # -- replication -----------------------------------------------------------------------

    @property
    def durable_writes(self) -> str:
        """The counter a durable transition increments before its ``WAIT``."""
        return f"{self.prefix}durable-writes"


@dataclass(frozen=True)
class UsageKeys:
    """Usage reporting's key names under one ``prefix`` (``fulfillment/usage/store.py``
    writes them, only through its scripts in ``fulfillment/usage/lua/``)."""

    prefix: str = "ff:"

    @property
    def base(self) -> str:
        """Every usage key starts with this."""
        return f"{self.prefix}usage:"

    def subscription(self, member: str) -> str:
        """The hash of one subscription (``member``: :func:`usage_member`)."""
        return f"{self.base}sub:{member}"

    @property
    def subscriptions(self) -> str:
        """Every subscription by when it became active."""
        return f"{self.base}subs"

    def day(self, day: str) -> str:
        """One day's run."""
        return f"{self.base}day:{day}"

    def pending(self, day: str) -> str:
        """The jobs of a day's run not finished yet."""
        return f"{self.base}day:{day}:pending"

    def job(self, day: str, job: str) -> str:
        """One job of a day's run."""
        return f"{self.base}job:{day}:{job}"

    @property
    def days(self) -> str:
        """Every run by when it was planned."""
        return f"{self.base}days"

    def period(self, member: str, period: str) -> str:
        """A subscription's state in one billing period."""
        return f"{self.base}period:{member}:{period}"

    def closed(self, period: str) -> str:
        """The subscriptions whose closing totals of ``period`` Pax8 has."""
        return f"{self.base}closed:{period}"

    def posts(self, member: str, period: str) -> str:
        """Every post of a subscription's period."""
        return f"{self.base}posts:{member}:{period}"

    @property
    def recent(self) -> str:
        """The latest posts of every subscription."""
        return f"{self.base}recent"

    @property
    def stats(self) -> str:
        """Running totals."""
        return f"{self.base}stats"

    @property
    def ratelimit(self) -> str:
        """The shared limiter's state."""
        return f"{self.base}ratelimit"

    @property
    def run_lock(self) -> str:
        """The run lock."""
        return f"{self.base}lock:run"

    @property
    def overdue(self) -> str:
        """What the latest check found overdue, per scope."""
        return f"{self.base}overdue"

    def alerted(self, period: str, scope: Scope) -> str:
        """Set once the overdue alert of ``period`` in ``scope`` went to Sentry."""
        return f"{self.base}alerted:{period}:{scope}"


def usage_member(scope: Scope, subscription_id: str) -> str:
    """A subscription's name in the usage sets and keys: ``<scope>:<id>`` (id checked)."""
    return f"{scope}:{check_id(subscription_id, 'subscriptionId')}"


def usage_job(member: str, period: str) -> str:
    """A usage job's name: ``<scope>:<id>:<period>``."""
    return f"{member}:{period}"


def split_usage_job(job: str) -> tuple[Scope, str, str]:
    """(scope, subscription id, period) of a usage job's name; ValueError when malformed."""
    scope, subscription_id, period = job.split(":")
    return Scope(scope), check_id(subscription_id, "subscriptionId"), period
