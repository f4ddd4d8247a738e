"""Redis: reachable, durable (AOF), replicated as the settings rely on, and holding data of
the schema this release reads.

Without AOF a restart loses every queued order and the ledger (reconciliation brings back
only what Pax8 still lists); ``REDIS_WAIT_REPLICAS`` above the replicas the master has
turns every webhook into a ``503``; Sentinel without a quorum cannot fail over; data of a
newer schema stops every process of this release at start (``fulfillment/ledger/schema.py``).
"""

from __future__ import annotations

from typing import Any, cast

import redis

from config.version import LEDGER_SCHEMA
from fulfillment.doctor.context import Doctor
from fulfillment.doctor.result import Finding, fail, ok, warn, worst
from fulfillment.ledger.migrations import MIGRATIONS, pending
from fulfillment.ledger.schema import read_stamp
from fulfillment.runtime.clients import REDIS_UNAVAILABLE, redis_location, sentinel_options

SENTINEL_TIMEOUT = 2.0


def check_redis(doctor: Doctor) -> Finding:
    """Redis answers (the master, when the sentinels name one)."""
    where = redis_location(doctor.settings)
    try:
        info = doctor.services.redis.info("server")
    except REDIS_UNAVAILABLE as exc:
        return fail(
            f"{where} does not answer: {exc}",
            "start Redis, or point REDIS_URL (or REDIS_SENTINELS) at it",
        )
    return ok(f"{where} answers (Redis {info.get('redis_version', '?')})")


def check_durability(doctor: Doctor) -> Finding:
    """AOF is on, its writes succeed, and ``appendfsync`` is named."""
    client = doctor.services.redis
    info = client.info("persistence")
    if not int(info.get("aof_enabled") or 0):
        return fail(
            "AOF is off: a Redis restart loses the queued orders and the ledger",
            "CONFIG SET appendonly yes, and appendonly yes in redis.conf (appendfsync everysec)",
        )
    if str(info.get("aof_last_write_status", "ok")) != "ok":
        return fail(
            "AOF is on but its last write failed (a full or read-only disk?)",
            "free the disk of Redis's data directory; see Redis's log",
        )
    try:
        reply = cast(dict[Any, Any], client.config_get("appendfsync"))
    except redis.ResponseError:
        return warn(
            "AOF is on; appendfsync cannot be read (CONFIG is not allowed here)",
            "make sure redis.conf says appendfsync everysec (or always)",
        )
    fsync = _text(next(iter(reply.values()), "")) if reply else ""
    if fsync == "no":
        return warn(
            "AOF is on with appendfsync no: the OS decides when it reaches the disk, and a "
            "crash of the Redis host can lose about 30 s of accepted webhooks",
            "CONFIG SET appendfsync everysec (or always), and the same in redis.conf",
        )
    return ok(f"AOF on, appendfsync {fsync or '?'}")


def check_replication(doctor: Doctor) -> Finding:
    """The master has the replicas ``REDIS_WAIT_REPLICAS`` waits for; with Sentinel, the
    sentinels reach their quorum."""
    settings = doctor.settings
    wanted = settings.redis_wait_replicas
    info = doctor.services.redis.info("replication")
    role = str(info.get("role", "?"))
    replicas = int(info.get("connected_slaves") or 0)
    if role != "master":
        return fail(
            f"Redis answers as a {role}, not a master: every write is refused",
            "point REDIS_URL at the master (or use REDIS_SENTINELS)",
        )
    findings: list[Finding] = []
    if wanted > replicas:
        findings.append(
            fail(
                f"REDIS_WAIT_REPLICAS={wanted} but the master has {replicas} connected "
                "replica(s): every webhook gets 503 and no order is provisioned",
                f"start {wanted - replicas} more replica(s), or lower REDIS_WAIT_REPLICAS",
            )
        )
    if settings.redis_sentinels:
        findings.append(_sentinels(doctor, replicas))
    else:
        findings.append(
            ok(f"a single Redis (no Sentinel), {replicas} replica(s), REDIS_WAIT_REPLICAS={wanted}")
        )
    return worst(findings)


def check_schema(doctor: Doctor) -> Finding:
    """The ledger's data is of the schema this release reads (its stamp, ``ff:schema``)."""
    stamp = read_stamp(doctor.services.ledger)
    reads = f"this release reads up to schema {LEDGER_SCHEMA}"
    if stamp.version is not None and stamp.version > LEDGER_SCHEMA:
        return fail(
            f"{stamp.describe()}; {reads}: its processes refuse to start",
            "run the release that stamped it (or a later one), or restore the backup taken "
            "before the upgrade (docs/upgrading.md#rolling-back)",
        )
    if stamp.version == LEDGER_SCHEMA:
        return ok(f"{stamp.describe()}; {reads}")
    todo = pending(stamp, MIGRATIONS, LEDGER_SCHEMA)
    if any(not migration.online for migration in todo):
        return fail(
            f"{stamp.describe()}; this release needs schema {LEDGER_SCHEMA}, through a "
            "migration that needs every older process stopped: its processes refuse to start",
            "stop every process of the older release, then fulfill migrate",
        )
    if stamp.version is None and not stamp.data:
        return ok(f"empty; the first process to start stamps schema {LEDGER_SCHEMA}")
    return warn(
        f"{stamp.describe()}; {reads}: the next process to start stamps or migrates it",
        "start any process of this release, or run fulfill migrate",
    )


def _sentinels(doctor: Doctor, replicas: int) -> Finding:
    """Ask every sentinel whether a failover could be authorised (``SENTINEL CKQUORUM``)."""
    settings = doctor.settings
    master = settings.redis_sentinel_master or ""
    answers: list[str] = []
    refused: list[str] = []
    silent: list[str] = []
    options = sentinel_options(settings, SENTINEL_TIMEOUT)
    for host, port in settings.redis_sentinels:
        name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        client = redis.Redis(host=host, port=port, decode_responses=True, **options)
        try:
            answers.append(str(client.execute_command("SENTINEL", "CKQUORUM", master)))  # type: ignore[no-untyped-call]
        except redis.ResponseError as exc:
            refused.append(f"{name}: {exc}")
        except REDIS_UNAVAILABLE:
            silent.append(name)
        finally:
            client.close()
    total = len(settings.redis_sentinels)
    if not answers:
        problem = "; ".join(refused) or f"none of the {total} sentinels answers"
        return fail(
            f"no sentinel can authorise a failover of {master!r}: {problem}",
            "start the sentinels, and check they monitor REDIS_SENTINEL_MASTER with a quorum",
        )
    seen = f"{len(answers)} of {total} sentinels reach the quorum of {master!r}"
    if refused or silent:
        others = "; ".join([*refused, *(f"{name} does not answer" for name in silent)])
        return warn(f"{seen}; {others}", "bring every sentinel back (a failover needs a quorum)")
    if replicas == 0:
        return warn(
            f"{seen}, but the master has no replica: a failover has nothing to promote",
            "start a replica of the master (replicaof)",
        )
    return ok(f"{seen}; {replicas} replica(s), REDIS_WAIT_REPLICAS={settings.redis_wait_replicas}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
