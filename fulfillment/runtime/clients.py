"""Build the shared clients (Redis, Pax8) from settings: one place, one way.

Each kind of Redis user gets one timeout policy (:class:`RedisUse`), and
:data:`REDIS_UNAVAILABLE` is the one list of errors that mean "Redis cannot take this now"
(a 503 for the receiver, a message handed back for a task, exit 3 for the CLI). Anything
else from Redis (a script error, a wrong type) is a bug.

With ``REDIS_SENTINELS`` a client asks the sentinels for the current master whenever it
connects, and a connection that finds its server demoted (``READONLY``) reconnects to the
new one (redis-py's Sentinel pool); ``REDIS_URL`` still gives the database, the
credentials and TLS.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

import redis
from kombu.exceptions import OperationalError
from pydantic import SecretStr
from redis.connection import parse_url
from redis.sentinel import Sentinel

from config.scrub import mask_url
from config.settings import Settings

if TYPE_CHECKING:
    from pax8.auth import Credentials
    from pax8.client import Pax8Client
    from pax8.usage import UsageClient


class NotReplicated(Exception):
    """Redis took a write, but fewer replicas than ``REDIS_WAIT_REPLICAS`` confirmed it within
    ``REDIS_WAIT_TIMEOUT_MS``: a failover now could lose it, so nothing may act on it yet."""

    def __init__(self, script: str, wanted: int, confirmed: int, reply: Any = None) -> None:
        super().__init__(script, wanted, confirmed, reply)
        self.script = script
        self.wanted = wanted
        self.confirmed = confirmed
        self.reply = reply

    def __str__(self) -> str:
        return (
            f"{self.script}: {self.confirmed} of {self.wanted} Redis replica(s) confirmed the "
            "write in time (REDIS_WAIT_REPLICAS)"
        )


REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # refused, reset, gone; also no master (Sentinel)
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,  # loading its AOF after a restart
    redis.exceptions.ReadOnlyError,  # a replica, e.g. right after a failover
    NotReplicated,  # the write is on the master only (REDIS_WAIT_REPLICAS)
    OperationalError,  # kombu's wrapper of the same, when publishing
)


class RedisUse(StrEnum):
    """Who uses a Redis client, and so how long one call may take."""

    RECEIVER = "receiver"  # answering a webhook: REDIS_SOCKET_TIMEOUT_SECONDS, then 503
    WORKER = "worker"  # a task: long enough for a busy Redis, short of the time limits
    CLI = "cli"  # an operator's command: a few seconds, then exit 3

    def socket_timeout(self, settings: Settings) -> float:
        """Seconds a call (and a connect) may take for this use."""
        if self is RedisUse.RECEIVER:
            return settings.redis_socket_timeout_seconds
        return 10.0 if self is RedisUse.WORKER else 5.0


def redis_client(settings: Settings, use: RedisUse, *, decode: bool = False) -> redis.Redis:
    """A Redis client (connection pool) for the ledger and locks, timed for ``use``: on
    ``REDIS_URL``, or on the master the sentinels name (``REDIS_SENTINELS``)."""
    timeout = use.socket_timeout(settings)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "decode_responses": decode,
    }
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **options)
    sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        settings.redis_sentinels, sentinel_kwargs=sentinel_options(settings, timeout)
    )
    assert settings.redis_sentinel_master is not None  # the settings check both together
    client = sentinels.master_for(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_master,
        redis_class=SentinelRedis,
        **master_options(settings),
        **options,
    )
    assert isinstance(client, SentinelRedis)
    client.sentinels = sentinels
    return client


class SentinelRedis(redis.Redis):
    """A client of the master the sentinels name; closing it closes their connections too."""

    sentinels: Sentinel | None = None

    def close(self) -> None:
        """Close the master's pool and the connections to the sentinels."""
        super().close()
        if self.sentinels is not None:
            self.sentinels.close()


def master_options(settings: Settings) -> dict[str, Any]:
    """What ``REDIS_URL`` says besides where: database, credentials, TLS (and its options)."""
    parsed: dict[str, Any] = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    options = {k: v for k, v in parsed.items() if k not in ("host", "port", "connection_class")}
    if parsed.get("connection_class") is redis.SSLConnection:
        options["ssl"] = True
    return options


def sentinel_options(settings: Settings, timeout: float) -> dict[str, Any]:
    """How to talk to the sentinels themselves: their password, TLS when ``REDIS_URL`` is
    ``rediss://`` (with its certificate options), and a short timeout (one that does not
    answer must not hold up asking the next)."""
    quick = min(timeout, 2.0)
    options: dict[str, Any] = {"socket_timeout": quick, "socket_connect_timeout": quick}
    if settings.redis_sentinel_password is not None:
        options["credential_provider"] = SentinelCredentials(settings.redis_sentinel_password)
    master = master_options(settings)
    if master.get("ssl"):
        options.update({k: v for k, v in master.items() if k.startswith("ssl")})
    return options


class SentinelCredentials(redis.CredentialProvider):
    """The sentinels' password, for redis-py to send when it connects to one.

    Not a plain ``password`` option: the broker's transport options travel into Celery's
    ``inspect stats`` and ``inspect conf`` replies (JSON) and from there onto Flower's
    worker page. This object prints and serializes as ``[Filtered]``.
    """

    def __init__(self, password: SecretStr) -> None:
        self._password = password

    def get_credentials(self) -> tuple[str]:
        """What AUTH sends."""
        return (self._password.get_secret_value(),)

    def __repr__(self) -> str:
        return "SentinelCredentials([Filtered])"

    def __json__(self) -> str:
        """What kombu's JSON encoder (Celery's control replies) writes instead."""
        return "[Filtered]"


def redis_location(settings: Settings) -> str:
    """Where Redis is, for messages (no password): the URL, or the master and its sentinels."""
    if settings.redis_sentinels:
        sentinels = ",".join(_address(host, port) for host, port in settings.redis_sentinels)
        return (
            f"the master {settings.redis_sentinel_master!r} of REDIS_SENTINELS={sentinels} "
            f"(REDIS_URL={mask_url(settings.redis_url)})"
        )
    return f"REDIS_URL={mask_url(settings.redis_url)}"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _credentials(settings: Settings) -> tuple[Credentials | None, Credentials | None]:
    """The production and simulation credential sets that are configured."""
    # Imported here: the receiver builds no Pax8 client and need not load httpx.
    from pax8.auth import Credentials

    production = simulation = None
    if settings.pax8_client_id and settings.pax8_client_secret:
        production = Credentials(
            settings.pax8_client_id, settings.pax8_client_secret.get_secret_value()
        )
    if settings.pax8_simulation_client_id and settings.pax8_simulation_client_secret:
        simulation = Credentials(
            settings.pax8_simulation_client_id,
            settings.pax8_simulation_client_secret.get_secret_value(),
        )
    return production, simulation


def pax8_client(settings: Settings) -> Pax8Client:
    """A Pax8 client with whichever credential sets are configured."""
    from pax8.client import Pax8Client

    production, simulation = _credentials(settings)
    return Pax8Client(
        settings.pax8_api_url,
        settings.pax8_token_url,
        production=production,
        simulation=simulation,
        timeout=settings.pax8_timeout_seconds,
        connections=settings.pool_concurrency,
        page_size=settings.reconcile_page_size,
    )


def usage_client(settings: Settings) -> UsageClient:
    """A Usage API client (tokens of the audience ``api://usage``) with the same credential
    sets; no retries inside it: the usage run retries with its own budget."""
    from pax8.usage import UsageClient

    production, simulation = _credentials(settings)
    return UsageClient(
        settings.usage_api_url,
        settings.pax8_token_url,
        production=production,
        simulation=simulation,
        timeout=settings.pax8_timeout_seconds,
        retries=0,
    )
