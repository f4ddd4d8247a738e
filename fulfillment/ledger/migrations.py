"""Migrations of the ledger's data from one schema to the next, and the check at every start.

A :class:`Migration` takes the data from schema ``to - 1`` to ``to`` in steps; a
:class:`RecordStep` rewrites every record in batches (a Lua script each: the batch's writes
and the cursor after it are stored together, so a run that is interrupted resumes after the
last batch it finished, and a batch is never half-applied). :func:`migrate` runs what is
pending under a lock (``ff:lock:migrate``, extended batch after batch; a holder that died
leaves it to expire, and the next process resumes where it stopped), stamps each version as
it is reached (a compare-and-set: two processes never stamp over each other), and does
nothing the second time. A process that finds the lock taken waits for its holder.

**Online or offline.** A migration is *online* when the previous release's processes can go
on running beside the data it leaves (it only adds what they ignore, and nothing they write
afterwards undoes it). Those run at the start of any process (``LEDGER_MIGRATE_AT_START``),
which is what makes a rolling deploy a deploy and nothing more. An *offline* one needs every
older process stopped first: a process refuses to start (:class:`MigrationNeeded`) and the
operator runs ``fulfill migrate``. ``docs/upgrading.md#migrations`` is the checklist for a
new one.

Schema 1 is the layout 0.1.0 wrote and this release keeps: there is no migration yet, and
data without a stamp (0.1.0's) is adopted as schema 1 by stamping it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from config.version import LEDGER_SCHEMA, __version__
from fulfillment.ledger.keys import Keys
from fulfillment.ledger.locks import RedisLock
from fulfillment.ledger.refs import Ref
from fulfillment.ledger.schema import (
    EXIT_CODE,
    MigrationNeeded,
    NewerSchema,
    SchemaError,
    Stamp,
    read_stamp,
)
from fulfillment.ledger.store import Ledger
from fulfillment.runtime.clients import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)

LOCK_SECONDS = 30.0
"""How long the migration lock lasts unless extended (after every batch): how long the
processes of a deploy wait, at most, before one of them resumes a migration whose runner died."""


@dataclass(frozen=True)
class RecordStep:
    """Rewrite every record: ``source`` (from :func:`~fulfillment.ledger.scripts.migration_source`)
    runs on batches of records, each given the ``per_record`` keys ``keys_of`` names."""

    summary: str
    source: str
    keys_of: Callable[[Keys, Ref], list[str]]
    per_record: int


@dataclass(frozen=True)
class Migration:
    """From schema ``to - 1`` to ``to``."""

    to: int
    summary: str
    online: bool
    """Whether the previous release's processes can run beside the migrated data."""
    steps: tuple[RecordStep, ...] = ()


MIGRATIONS: tuple[Migration, ...] = ()
"""Every migration, in order: the one to schema 2 first. Their last ``to`` is
:data:`config.version.LEDGER_SCHEMA` (``tests/unit/test_schema.py`` holds them to it)."""


@dataclass(frozen=True)
class Outcome:
    """What :func:`migrate` found and did."""

    before: Stamp
    version: int
    """The data's schema now."""
    migrated: tuple[int, ...] = ()
    """The versions this run migrated to (none when the data was current or empty)."""
    stamped: bool = False
    """Whether this run wrote a stamp (an empty Redis, 0.1.0's data, or a migration)."""
    changed: int = 0
    """Records a migration rewrote."""
    seconds: float = 0.0
    waited: bool = False
    """Whether another process held the lock meanwhile (and maybe did the work)."""

    def line(self) -> str:
        """One line for the log or the terminal."""
        if self.migrated:
            steps = " → ".join(str(v) for v in self.migrated)
            return (
                f"ledger migrated from {self.before.describe()} to schema {steps}: "
                f"{self.changed} records rewritten in {self.seconds:.2f}s"
            )
        if self.stamped:
            return f"ledger: {self.before.describe()}; stamped schema {self.version}"
        return f"ledger: {self.before.describe()}; this release reads up to {LEDGER_SCHEMA}"


@dataclass
class _Run:
    """One :func:`migrate` call's settings and tallies."""

    ledger: Ledger
    release: str
    batch: int
    offline: bool
    rewrite: bool
    started: float = field(default_factory=time.monotonic)
    changed: int = 0
    migrated: list[int] = field(default_factory=list)


class LockLost(Exception):
    """The migration lock expired under this run (a pause longer than the lock): another
    process resumes the migration where this one stopped. A process at start waits for it
    (:func:`check_at_start`); ``fulfill migrate`` says so (exit 1)."""

    def __str__(self) -> str:
        return "the migration lock expired under this run; another process resumes it"


def pending(stamp: Stamp, migrations: Sequence[Migration], target: int) -> list[Migration]:
    """The migrations from the data's schema up to ``target`` (none for an empty Redis)."""
    current = stamp.schema
    if current is None:
        return []
    return [m for m in migrations if current < m.to <= target]


def migrate(
    ledger: Ledger,
    *,
    offline: bool = False,
    rewrite: bool = True,
    release: str = __version__,
    target: int = LEDGER_SCHEMA,
    migrations: Sequence[Migration] = MIGRATIONS,
    batch: int = 500,
    lock_seconds: float = LOCK_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Bring the data to schema ``target``: stamp an empty Redis or 0.1.0's data, run what
    is pending (with ``offline`` also the migrations that need older processes stopped), or
    nothing. :class:`NewerSchema` for data of a later schema, :class:`MigrationNeeded` when
    an offline migration is pending and ``offline`` is not set, or any migration and not
    ``rewrite`` (then only a stamp is written, which changes no data); neither writes
    anything."""
    run = _Run(ledger, release, batch, offline, rewrite)
    waited = False
    quiet_until = 0.0
    while True:
        stamp = read_stamp(ledger)
        _refuse(run, stamp, target, migrations)
        if stamp.version == target:
            return Outcome(stamp, target, seconds=time.monotonic() - run.started, waited=waited)
        lock = ledger.migration_lock(lock_seconds)
        if lock.acquire():
            try:
                return _under_lock(run, lock, target, migrations, waited)
            finally:
                lock.release()
        waited = True
        if time.monotonic() >= quiet_until:
            log.warning("ledger: another process is migrating or stamping it; waiting for it")
            quiet_until = time.monotonic() + 10
        sleep(0.2)


def _refuse(run: _Run, stamp: Stamp, target: int, migrations: Sequence[Migration]) -> None:
    """Raise what this run may not do with ``stamp``'s data (and write nothing)."""
    if stamp.version is not None and stamp.version > target:
        raise NewerSchema(stamp, target)
    todo = pending(stamp, migrations, target)
    waiting = [m for m in todo if not m.online]
    if waiting and not run.offline:
        why = f"schema {waiting[0].to} ({waiting[0].summary}) needs every older process stopped"
        raise MigrationNeeded(stamp, target, why)
    if todo and not run.rewrite:
        raise MigrationNeeded(stamp, target, "LEDGER_MIGRATE_AT_START is off")
    if stamp.schema is not None and stamp.schema < target:
        missing = {stamp.schema + 1 + i for i in range(target - stamp.schema)}
        missing -= {m.to for m in migrations}
        if missing:  # a release always ships every migration up to its schema
            raise MigrationNeeded(stamp, target, f"no migration to schema {min(missing)}")


def _under_lock(
    run: _Run,
    lock: RedisLock,
    target: int,
    migrations: Sequence[Migration],
    waited: bool,
) -> Outcome:
    ledger = run.ledger
    before = stamp = read_stamp(ledger)  # again: another process may have finished meanwhile
    _refuse(run, stamp, target, migrations)
    if stamp.version == target:
        return Outcome(stamp, target, waited=waited, seconds=time.monotonic() - run.started)
    todo = pending(stamp, migrations, target)
    if not todo:  # an empty Redis, or 0.1.0's data and no migration since: the stamp alone
        _stamp(ledger, lock, stamp, target, run.release)
    for migration in todo:
        _run_migration(run, lock, migration)
        _stamp(ledger, lock, stamp, migration.to, run.release)
        run.migrated.append(migration.to)
        stamp = Stamp(migration.to, release=run.release)
    return Outcome(
        before,
        target,
        migrated=tuple(run.migrated),
        stamped=True,
        changed=run.changed,
        seconds=time.monotonic() - run.started,
        waited=waited,
    )


def _stamp(ledger: Ledger, lock: RedisLock, stamp: Stamp, version: int, release: str) -> None:
    action, found = ledger.stamp_schema(lock, stamp.found, version, release, stamp.label)
    if action == "lost":
        raise LockLost()
    if action != "stamped":  # cannot happen under the lock; never write over another stamp
        raise SchemaError(f"the schema stamp changed under the migration lock (now {found!r})")


def _run_migration(run: _Run, lock: RedisLock, migration: Migration) -> None:
    """Every step of ``migration``, resuming where an interrupted run stopped."""
    ledger = run.ledger
    progress = ledger.migration_progress()
    step, cursor = 0, 0
    if progress.get("to") == str(migration.to):
        step = int(progress.get("step") or 0)
        cursor = int(progress.get("cursor") or 0)
        log.warning("ledger: resuming the migration to schema %d at step %d", migration.to, step)
    for index in range(step, len(migration.steps)):
        if not ledger.record_migration_step(lock, migration.to, index, cursor, run.release):
            raise LockLost()
        _walk(run, lock, migration.steps[index], cursor)
        cursor = 0
    if not ledger.record_migration_step(lock, migration.to, len(migration.steps), 0, run.release):
        raise LockLost()


def _walk(run: _Run, lock: RedisLock, step: RecordStep, cursor: int) -> None:
    """Every record, a batch at a time from ``cursor``, the lock extended after each."""
    ledger = run.ledger
    while True:
        following, members = ledger.index_page(cursor, run.batch)
        refs: list[Ref] = []
        for member in members:
            try:
                refs.append(Ref.parse(member))
            except ValueError:  # not a record's name (written by hand): nothing to migrate
                log.warning("ledger: index member %r is not a record; left alone", member)
        keys = [key for ref in refs for key in step.keys_of(ledger.keys, ref)]
        if len(keys) != step.per_record * len(refs):
            raise ValueError(f"{step.summary}: keys_of must name {step.per_record} keys per record")
        names = [ref.member for ref in refs]
        changed = ledger.migrate_batch(step.source, lock, following, step.per_record, keys, names)
        if changed is None or not lock.acquire():
            raise LockLost()
        run.changed += changed
        if following == 0:
            return
        cursor = following


def check_at_start(
    ledger: Ledger,
    *,
    migrate_at_start: bool,
    wait_for_redis: bool = True,
    exit: Callable[[int], object] = sys.exit,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """What every process does as it starts, before it reads or writes an order: check the
    data's schema and migrate it when that is safe (:func:`migrate`, online migrations only,
    and none when ``migrate_at_start`` is off).

    Data this release cannot use prints one line and exits :data:`EXIT_CODE` (``exit``: a
    Celery signal handler passes ``os._exit``), having written nothing. With
    ``wait_for_redis``, a Redis that does not answer yet (starting, loading its AOF) is
    waited for: no process runs on data it has not checked.
    """
    quiet_until = 0.0
    while True:
        try:
            outcome = migrate(ledger, rewrite=migrate_at_start, sleep=sleep)
            break
        except LockLost as exc:  # another process took the migration over: wait for it
            log.warning("ledger: %s", exc)
        except SchemaError as exc:
            print(f"fulfillment: {exc}", file=sys.stderr, flush=True)
            exit(EXIT_CODE)
            raise
        except REDIS_UNAVAILABLE as exc:
            if not wait_for_redis:
                raise
            if time.monotonic() >= quiet_until:
                log.warning("ledger: waiting for Redis to check the schema (%s)", exc)
                quiet_until = time.monotonic() + 10
            sleep(1.0)
    log.warning("%s", outcome.line())
    return outcome
