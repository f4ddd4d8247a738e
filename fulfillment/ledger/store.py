"""The ledger's writer: one Redis record per provision request, changed only by atomic scripts.

States and transition answers are in :mod:`fulfillment.ledger.states`. A record is named by its
:class:`~fulfillment.ledger.refs.Ref`, ``<scope>:<id>`` (``pax8``, ``pax8-sim`` or ``cloudblue``,
and an id checked against :data:`~fulfillment.ledger.refs.ID_PATTERN`), so the same id in two
scopes is two records and no notice of one scope can change another's. Every key name is
built by :mod:`fulfillment.ledger.keys` (its docstring lists them); the reads are
:class:`~fulfillment.ledger.queries.LedgerReader`, which :class:`Ledger` extends.

Every write is one Lua script (``fulfillment/ledger/lua/*.lua``, each with a header naming
its keys and arguments; the record scripts share ``common.lua``), loaded once per client
and given every key it touches in ``KEYS``. No key is written with a plain command, but the
counter a durable write increments for its ``WAIT`` (below) and the ``BLPOP`` that takes an
outcome token (a blocking command, which a script cannot run). So two workers (or a worker
and the receiver) can never both claim a request, and a record is never half-written.

Vendor work happens at most once per (request, detail): a task claims the record for its
detail and a finished detail is never claimed again; a new detail starts over. Each claim
records until when the vendor call it starts may still be running (``call_until``, the
adapter's deadline); a call that ended without an answer (its worker killed, a timeout, the
soft time limit) keeps it, and no claim calls the vendor again before it has passed (action
``wait``). Each claim also has its own token, which every later write of its holder
presents: a worker that lost its claim to a redelivery of the same message (same task id;
after a partition, say) can write nothing.

**Durable transitions** (``wait_replicas`` > 0, from ``REDIS_WAIT_REPLICAS``): the writes
whose loss in a failover could provision or report twice (recording a notification before
its 202, the claim before a vendor call, the outcome after it, an attempt marked
``posting`` before its result is POSTed) run with Redis ``WAIT`` on the same connection, in
one round trip; fewer confirmations than asked raise
:class:`~fulfillment.runtime.clients.NotReplicated`, and nobody acts on the write. Replication is
one ordered stream, so a confirmed write also confirms everything the master did before
it, and what a failover loses is only a tail that nothing acted on.

To add a transition: a ``lua/<name>.lua`` file with its header (a record script starts from
``common.lua``'s prelude and its key layout), a method here that runs it with ``_run``
(``durable=True`` when a failover must not lose it), and its answers in
:mod:`~fulfillment.ledger.states` when it decides something (``docs/architecture.md#the-ledger``).

Long on purpose: every write of the ledger is a method here (the records' transitions, the
reconciliation's figures, the doctor's report, the schema stamp and a migration's batches),
each a few lines that run one script, so the one writer stays one file to read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.sentinel import SentinelConnectionPool

from fulfillment.ledger.keys import Keys
from fulfillment.ledger.locks import RedisLock
from fulfillment.ledger.queries import LedgerReader
from fulfillment.ledger.records import (
    RECONCILE_TOTALS,
    A,
    Change,
    Notice,
    ReportStart,
    as_text,
    pairs,
    parse_attempts,
    parse_record,
)
from fulfillment.ledger.refs import Ref, Scope, check_id
from fulfillment.ledger.scripts import lua_source
from fulfillment.ledger.states import (
    STATES,
    Accepted,
    AttemptState,
    Changed,
    Claimed,
    State,
)
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, NotReplicated
from pax8.models import ResultStatus

OUTCOME_TOKEN_SECONDS = 3600
"""How long an outcome token lives (``notify_waiters`` in ``common.lua`` says the same): a
waiter reads the record itself, the token only wakes it, and an hour outlives any wait."""

log = logging.getLogger(__name__)


class Ledger(LedgerReader):
    """Typed access to the ledger's records and transitions (its reads are inherited).

    ``wait_replicas`` / ``wait_timeout_ms``: how many replicas must confirm a durable
    transition, and how long it waits for them (see the module docstring).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = Keys.prefix,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
    ) -> None:
        super().__init__(client, Keys(prefix))
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._scripts: dict[str, Script] = {}

    def _waiters(self, ref: Ref) -> list[str]:
        """The outcome list for the scripts that settle an outcome, where someone may wait
        for it (the receiver answers CloudBlue calls with the outcome); none for Pax8."""
        return [self.keys.outcome(ref)] if ref.scope is Scope.CLOUDBLUE else []

    def _script(self, name: str, record: bool = True) -> Script:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.redis.register_script(lua_source(name, record))
        return script

    def _run(
        self, name: str, ref: Ref, *args: Any, keys: Sequence[str] = (), durable: bool = False
    ) -> Any:
        """Run record script ``name`` on ``ref`` (its member name is ARGV[1]).

        ``durable``: with ``wait_replicas`` set, the reply counts only once that many
        replicas hold the script's effects (else :class:`NotReplicated`, carrying it).
        """
        script = self._script(name)
        all_keys, argv = [*self.keys.record_script_keys(ref), *keys], [ref.member, *args]
        if not durable or self.wait_replicas <= 0:
            return script(keys=all_keys, args=argv)
        reply, confirmed = self._run_and_wait(script, all_keys, argv)
        if confirmed < self.wait_replicas:
            self._rediscover_master()
            raise NotReplicated(name, self.wait_replicas, confirmed, reply)
        return reply

    def _run_and_wait(self, script: Script, keys: list[str], args: list[Any]) -> tuple[Any, int]:
        """EVALSHA and ``WAIT`` on one connection, in one round trip: (reply, confirmations).

        WAIT counts the replicas that acknowledged this connection's last write. A script
        that decided without writing (a duplicate notification, a claim of a finished
        order) wrote nothing of its own, yet its answer rests on what other connections
        wrote; so one counter increment always follows the script, and WAIT confirms the
        master's whole stream up to here, whatever the script did.
        """
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.incr(self.keys.durable_writes)
            pipe.execute_command(  # type: ignore[no-untyped-call]  # redis-py's signature
                "WAIT", self.wait_replicas, self.wait_timeout_ms
            )
            try:
                reply, _, confirmed = pipe.execute()
            except redis.exceptions.NoScriptError:
                # A new master after a failover, or a restarted one: load it, run again
                # (the script did not run, so nothing happened twice).
                if attempt == 2:
                    raise
                self.redis.script_load(script.script)
                continue
            return reply, int(confirmed)
        raise AssertionError("unreachable")

    def _rediscover_master(self) -> None:
        """After a failover the old master takes writes until Sentinel demotes it (seconds):
        ask the sentinels again, so the next write goes to the new one (a no-op without
        Sentinel)."""
        pool = self.redis.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            try:
                # Drops the idle connections when the master moved.
                pool.get_master_address()  # type: ignore[no-untyped-call]
            except REDIS_UNAVAILABLE as exc:
                log.warning("could not ask the sentinels for the master: %s", exc)

    @staticmethod
    def _change(action: type[A], reply: Any) -> Change[A]:
        name, previous, *rest = reply
        before = as_text(previous)
        wait = float(as_text(rest[0])) if rest else 0.0
        route = as_text(rest[1]) if len(rest) > 1 else ""
        state = State(before) if before in STATES else None
        return Change(action(as_text(name)), state, wait, route)

    # -- intake --------------------------------------------------------------------------

    def accept(
        self,
        notice: Notice,
        message: tuple[str, str] | None = None,
        now: float | None = None,
    ) -> Change[Accepted]:
        """Record a notification; the action (:class:`~fulfillment.ledger.states.Accepted`) says
        what to enqueue. With ``message`` (queue, raw task message) the script pushes it
        itself when the order must be provisioned (action ``queued``).

        A new record keeps the notice's route; a record of another route answers ``reroute``
        with it (:attr:`Change.route`) and changes nothing: the caller accepts again with
        that route's message, so an order never changes route (a record written before
        routes takes the notice's).
        """
        queue, raw = message if message else ("", "")
        reply = self._run(
            "accept",
            notice.ref,
            now or time.time(),
            notice.request_id,
            notice.source,
            notice.type,
            "1" if notice.simulation else "0",
            notice.detail_id,
            notice.attempt_id,
            notice.webhook_id,
            notice.payload,
            raw,
            notice.route,
            notice.previous_route,
            notice.route_refusal,
            keys=[queue] if queue else [],
            durable=True,
        )
        return self._change(Accepted, reply)

    def mark_queued(self, ref: Ref, detail_id: str, now: float | None = None) -> State | None:
        """``received`` → ``queued`` once the task is published; returns the state after."""
        after = as_text(self._run("mark_queued", ref, now or time.time(), detail_id))
        return State(after) if after else None

    def add_attempt(self, ref: Ref, attempt_id: str, detail_id: str) -> bool:
        """Owe a result to ``attempt_id`` (an attempt created by us); True if new."""
        check_id(attempt_id, "attempt id")
        return bool(self._run("add_attempt", ref, time.time(), attempt_id, detail_id))

    # -- provisioning --------------------------------------------------------------------

    def claim(
        self,
        ref: Ref,
        detail_id: str,
        task_id: str,
        lease_seconds: float,
        max_claims: int,
        call_seconds: float | None = None,
        now: float | None = None,
        *,
        token: str | None = None,
        route: str | None = None,
        decided: tuple[str, str, str] = ("", "", ""),
        worker: str = "",
    ) -> Change[Claimed]:
        """Take the record for provisioning ``detail_id`` (see :class:`Claimed`).

        ``task_id`` is the delivery's task: a redelivery of the same message may take over
        a claim whose holder died. ``token`` is this claim's own: :meth:`finish`,
        :meth:`release_for_retry` and :meth:`mark_dead` must present it, so a holder that
        was taken over (it was only cut off, and comes back) cannot write. It defaults to
        the task id, which is enough only where two deliveries of one message never
        overlap; :func:`fulfillment.workflow.provisioning.provision` gives every claim a fresh one.

        ``worker`` is the id of the worker process claiming (its heartbeat's:
        :mod:`fulfillment.ledger.liveness`), kept for operators to see who holds the order.

        ``call_seconds`` is how long the vendor call this claim starts may still be running
        (the adapter's deadline; the lease when not given). While an earlier call may still
        be running the answer is ``wait``, with the seconds left in :attr:`Change.wait`.

        ``route`` is the route the claimer expects the record to have (and took the call's
        deadline from): a record of another route answers ``reroute`` with it
        (:attr:`Change.route`) and is not claimed (``None``: any route, for claims made by
        hand). A record written before routes has none
        (``""``): ``decided`` (route, previous route, refusal) is then kept with it as the
        claim is made.

        Durable: a claim the replicas did not confirm is given back (uncounted, and with no
        call running) and :class:`NotReplicated` raised, so no vendor is called on it.
        """
        now = now or time.time()
        token = token or task_id
        call = lease_seconds if call_seconds is None else call_seconds
        args = (
            now,
            detail_id,
            task_id,
            now + lease_seconds,
            max_claims,
            now + call,
            token,
            "*" if route is None else route,
            *decided,
            worker,
        )
        try:
            reply = self._run("claim", ref, *args, keys=self._waiters(ref), durable=True)
        except NotReplicated as exc:
            if exc.reply is not None and as_text(exc.reply[0]) == Claimed.CLAIMED:
                self.release_for_retry(
                    ref, detail_id, token, str(exc), call_ended=True, counted=False
                )
            raise
        change = self._change(Claimed, reply)
        if change.action is Claimed.CLAIMED and len(reply) > 4:
            change = dataclasses.replace(change, record=parse_record(pairs(reply[4])))
        return change

    def finish(
        self,
        ref: Ref,
        detail_id: str,
        token: str,
        outcome: ResultStatus | str,
        external_ids: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        message: str = "",
        *,
        report: RedisLock | None = None,
    ) -> Change[Changed]:
        """Store the vendor's outcome (``Success`` / ``Fail``) if the claim whose ``token``
        this is still holds the record. Durable (see the module docstring).

        ``report``: the record's :meth:`report_lock`; the same round trip then starts the
        report run as :meth:`begin_report` does (the change's ``report`` says what it found).
        """
        try:
            reply = self._run(
                "finish",
                ref,
                time.time(),
                detail_id,
                token,
                ResultStatus(outcome),
                json.dumps(external_ids or {}),
                json.dumps(metadata or {}, default=str),
                message,
                report.token if report else "",
                report.ttl_ms if report else 0,
                keys=[self.keys.report_lock(ref), *self._waiters(ref)],
                durable=True,
            )
        except NotReplicated as exc:
            if report and exc.reply is not None and len(exc.reply) > 2:
                self._report_start(exc.reply[2:], report)  # taken: give it back
                report.release()
            raise
        change = self._change(Changed, reply[:2])
        if report is None or len(reply) <= 2:
            return change
        return dataclasses.replace(change, report=self._report_start(reply[2:], report))

    def release_for_retry(
        self,
        ref: Ref,
        detail_id: str,
        token: str,
        error: str,
        call_ended: bool = False,
        *,
        counted: bool = True,
    ) -> Change[Changed]:
        """``provisioning`` → ``queued`` before a countdown retry, if the claim whose ``token``
        this is still holds; the retry counts against the budget when ``counted``.

        ``call_ended``: the vendor answered (or was never called), so its call is over.
        Otherwise (a timeout, the soft time limit) the call may still be running there, and
        its deadline stays.
        """
        reply = self._run(
            "release",
            ref,
            time.time(),
            detail_id,
            token,
            error,
            "1" if call_ended else "0",
            "1" if counted else "0",
        )
        return self._change(Changed, reply)

    def mark_dead(
        self, ref: Ref, error: str, token: str = "", event: str = "dead"
    ) -> Change[Changed]:
        """Give up on the request (with a claim's ``token``: only if that claim still holds
        it)."""
        reply = self._run("dead", ref, time.time(), token, error, event, keys=self._waiters(ref))
        return self._change(Changed, reply)

    def reset(
        self,
        ref: Ref,
        *,
        event: str,
        note: str = "",
        new_generation: bool = False,
        only_from: Iterable[State] = (),
    ) -> Change[Changed]:
        """Back to ``received`` (replay, reconciliation); refused outside ``only_from``."""
        reply = self._run(
            "reset",
            ref,
            time.time(),
            "1" if new_generation else "0",
            event,
            note,
            ",".join(only_from),
        )
        return self._change(Changed, reply)

    def requeue_lost(
        self,
        ref: Ref,
        detail_id: str,
        seen: State,
        seen_at: str,
        message: tuple[str, str],
        note: str,
    ) -> Change[Changed]:
        """Queue ``ref`` again with ``message`` (queue, raw task message), pushed where it is
        taken next, if it is still in state ``seen`` since ``seen_at`` (its ``state_at`` as
        read) for ``detail_id``: its own message was found nowhere in Redis (the worker that
        took it off the queue died before recording it). Refused if it moved on since."""
        queue, raw = message
        reply = self._run(
            "requeue_lost",
            ref,
            time.time(),
            detail_id,
            seen,
            seen_at,
            raw,
            note,
            keys=[queue],
        )
        return self._change(Changed, reply)

    # -- reporting -----------------------------------------------------------------------

    def begin_report(self, ref: Ref, lock: RedisLock) -> ReportStart:
        """Start a report run in one round trip (``lua/report_begin.lua``): take ``lock``
        (the record's :meth:`report_lock`), read the record and its attempts under it, and
        mark ``posting`` the attempts whose result is about to be POSTed.

        Durable (as :meth:`mark_posting`): when the replicas did not confirm it, the lock is
        given back and :class:`NotReplicated` raised, so no POST leaves on it.
        """
        try:
            reply = self._run(
                "report_begin", ref, time.time(), lock.token, lock.ttl_ms,
                keys=[lock.key], durable=True,
            )  # fmt: skip
        except NotReplicated as exc:
            if exc.reply is not None:
                self._report_start(exc.reply, lock)  # taken: give it back
                lock.release()
            raise
        return self._report_start(reply, lock)

    @staticmethod
    def _report_start(reply: Any, lock: RedisLock) -> ReportStart:
        """What ``begin_report`` (common.lua) answered; marks ``lock`` held if it took it."""
        action, state = as_text(reply[0]), as_text(reply[1])
        known = State(state) if state in STATES else None
        if action != "locked":
            return ReportStart(action, known)
        lock.held = True
        record = parse_record(pairs(reply[2]))
        return ReportStart(action, known, record, tuple(parse_attempts(pairs(reply[3]))))

    def mark_posting(self, ref: Ref, attempt_id: str) -> None:
        """Note that a result POST for ``attempt_id`` is about to leave (durable: a POST
        whose mark a failover lost would be repeated without the look-up first)."""
        self._run(
            "mark_attempt",
            ref,
            time.time(),
            attempt_id,
            AttemptState.POSTING,
            "",
            "",
            durable=True,
        )

    def mark_pending(self, ref: Ref, attempt_id: str, event: str, note: str) -> None:
        """The attempt is still owed (its POST surely stored nothing); noted in the history."""
        self._run("mark_attempt", ref, time.time(), attempt_id, AttemptState.PENDING, event, note)

    def settle(
        self,
        ref: Ref,
        attempt_id: str,
        result_id: str | None,
        status: AttemptState = AttemptState.REPORTED,
        note: str = "",
        *,
        release: RedisLock | None = None,
    ) -> State | None:
        """Mark an attempt reported (or superseded, rejected: ``note`` says why, in the
        history); returns the record's state after. ``release``: the run's report lock,
        given back in the same round trip (if it is still ours)."""
        args: list[Any] = [time.time(), attempt_id, status, result_id or "", note]
        keys: list[str] = []
        if release is not None and release.held:
            keys, release.held = [release.key], False
            args.append(release.token)
        after = as_text(self._run("settle", ref, *args, keys=keys))
        return State(after) if after else None

    def count_report_retry(self, ref: Ref) -> int:
        """Count one more failed try to report; how many since the budget last restarted
        (0, and nothing written, when there is no record)."""
        return int(self._run("report_retries", ref, "1"))

    def reset_report_retries(self, ref: Ref) -> None:
        """Restart the report budget (a report deferred to reconciliation starts afresh)."""
        self._run("report_retries", ref, "0")

    def report_lock(self, ref: Ref, seconds: float, owner: str | None = None) -> RedisLock:
        """The lock of the run that reports ``ref`` (``owner``: see :class:`RedisLock`)."""
        return RedisLock(self.redis, self.keys.report_lock(ref), seconds, owner=owner)

    def reopen(self, ref: Ref, attempt_id: str, note: str) -> State | None:
        """Owe ``attempt_id`` a result again after it was settled ``rejected``.

        Returns the record's state after (``provisioned``/``failed`` when a report is
        due), or None when the attempt was not rejected (nothing changed).
        """
        after = as_text(self._run("reopen", ref, time.time(), attempt_id, note))
        return State(after) if after else None

    def purge_reported(self, older_than: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` records reported before ``older_than``; how many went."""
        refs = self.in_state(State.REPORTED, older_than=older_than, limit=limit)
        if not refs:
            return 0
        keys = [self.keys.index, self.keys.state(State.REPORTED)]
        for ref in refs:
            keys += self.keys.every_key_of(ref)
        members = [ref.member for ref in refs]
        return int(self._script("purge", record=False)(keys=keys, args=[older_than, *members]))

    def wake_next(self, ref: Ref) -> None:
        """Put the outcome token back for the next waiter (see
        :mod:`fulfillment.cloudblue.awaiting`)."""
        script = self._script("wake", record=False)
        script(keys=[self.keys.outcome(ref)], args=[OUTCOME_TOKEN_SECONDS])

    def wait_for_outcome(self, ref: Ref, seconds: float) -> bool:
        """Block up to ``seconds`` for a token on the record's outcome list; True if one came
        (it is taken). ``BLPOP``: a script cannot block."""
        return self.redis.blpop([self.keys.outcome(ref)], timeout=seconds) is not None

    def cloudblue_occurrence(
        self, subscription_id: str, fingerprint: str, keep_seconds: float = 0
    ) -> int:
        """The place of a CloudBlue call in its subscription's sequence of operations: the
        latest one's when ``fingerprint`` repeats the latest call (a retry), else the next.
        The sequence is kept ``keep_seconds`` after its latest call (0: forever)."""
        key = self.keys.cloudblue_sequence(subscription_id)
        script = self._script("occurrence", record=False)
        return int(script(keys=[key], args=[fingerprint, keep_seconds]))

    def record_reconcile_run(self, summary: dict[str, Any], buckets: Sequence[float] = ()) -> None:
        """Count a reconciliation run, add its figures to the running totals and its
        duration to a histogram of ``buckets`` (upper bounds), and keep its summary.

        Kept here rather than in a process: a run happens in a worker, the CLI or the
        console, and the metrics read the totals wherever they are scraped.
        """
        seconds = float(summary.get("seconds") or 0.0)
        bucket = next((f"{le:g}" for le in buckets if seconds <= le), "+Inf")
        totals: list[Any] = []
        for name in RECONCILE_TOTALS:
            totals += [name, len(summary.get(name) or ()) if name == "errors"
                       else int(summary.get(name) or 0)]  # fmt: skip
        keys = [self.keys.reconcile_runs, self.keys.reconcile_last, self.keys.reconcile_stats]
        script = self._script("reconcile_run", record=False)
        script(keys=keys, args=[json.dumps(summary), bucket, seconds, *totals])

    def record_doctor_report(self, report: dict[str, Any]) -> None:
        """Keep ``report`` (a ``fulfill doctor`` run, as JSON-ready data) as the last one,
        replacing the one before: it is a snapshot for the metrics and the console, not
        order data."""
        script = self._script("doctor_report", record=False)
        script(keys=[self.keys.doctor_last], args=[json.dumps(report)])

    def reconcile_lock(self, seconds: float) -> RedisLock:
        """The lock a reconciliation run holds (one run at a time)."""
        return RedisLock(self.redis, self.keys.reconcile_lock, seconds)

    def first_reconcile_within(self, seconds: float) -> bool:
        """Whether no reconciliation started in the last ``seconds``; either way, one
        starting now is noted (beat processes on two hosts make one run per interval).

        A lock nobody releases: it expires after ``seconds``.
        """
        return RedisLock(self.redis, self.keys.reconcile_throttle, seconds).acquire()

    # -- the schema (fulfillment.ledger.migrations runs these, holding the migration lock) --

    def migration_lock(self, seconds: float) -> RedisLock:
        """The lock a migration (or the first stamp of a ledger) holds: one at a time."""
        return RedisLock(self.redis, self.keys.migrate_lock, seconds)

    def stamp_schema(
        self, lock: RedisLock, found: str, version: int, release: str, before: str
    ) -> tuple[str, str]:
        """Stamp ``version`` if the stamp still reads ``found`` ('' = none): ('stamped',
        version), ('moved', what another process stamped) or ('lost', '') without the lock."""
        keys = [self.keys.schema, self.keys.migration, self.keys.migrate_lock]
        args: list[Any] = [found, version, release, time.time(), before, lock.token]
        action, value = self._script("schema_stamp", record=False)(keys=keys, args=args)
        return as_text(action), as_text(value)

    def record_migration_step(
        self, lock: RedisLock, to: int, step: int, cursor: int, release: str
    ) -> bool:
        """Note that the migration to ``to`` is at ``step`` (and ``cursor`` in it); False
        (nothing written) without the lock."""
        keys = [self.keys.migration, self.keys.migrate_lock]
        args: list[Any] = [lock.token, to, step, cursor, release, time.time()]
        return bool(self._script("migration_step", record=False)(keys=keys, args=args))

    def migrate_batch(
        self, source: str, lock: RedisLock, cursor: int, per_record: int,
        keys: Sequence[str], members: Sequence[str],
    ) -> int | None:  # fmt: skip
        """Run one batch of a migration step (``source``: ``migrate_common.lua`` and the
        step's body) and store ``cursor`` with it; the records it changed, or None (nothing
        written) without the lock."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.redis.register_script(source)
        all_keys = [self.keys.migration, self.keys.migrate_lock, *keys]
        args: list[Any] = [lock.token, cursor, time.time(), per_record, *members]
        action, count = script(keys=all_keys, args=args)
        return int(count) if as_text(action) == "done" else None
