"""Typed settings, read from the environment (and an optional ``.env`` file).

Every process (receiver, worker, beat, CLI) builds one :class:`Settings`. A missing
or malformed setting must stop the process at start with one line naming the
variable, so :func:`load_settings` turns pydantic's validation report into exactly
that, and :meth:`Settings.require` checks what a given role needs beyond parsing.

Long on purpose: the one model declares every setting with its default, its description
(the configuration page is made from it) and its checks, which belong beside it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values  # pydantic-settings' own reader of .env files
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from config.routes import (
    DEFAULT_ROUTE,
    Backend,
    HttpDefaults,
    Routes,
    RoutesError,
    load_routes,
    single_route,
)

POOL_CONCURRENCY = {"prefork": 2, "gevent": 100}
"""Orders in flight per worker when ``WORKER_CONCURRENCY`` is unset: a process each with
prefork (a process costs tens of MiB), a greenlet each with gevent (a few KiB; 100 calls
of 1 s in flight is 100 orders/s, more than one core drives through the project)."""

Role = Literal["receiver", "worker", "beat", "cli", "pax8", "console"]

SecretList = Annotated[list[SecretStr], NoDecode]
SentinelList = Annotated[list[tuple[str, int]], NoDecode]
RouteList = Annotated[list[str], NoDecode]

_MASTER_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


def _host_port(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as a pair; ValueError naming what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not _HOST.fullmatch(host):
        raise ValueError(f"each entry must be host:port, got {text!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the port of {text!r} must be 1-65535")
    return host.strip("[]"), int(port)


USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# werkzeug.security's formats: "scrypt:n:r:p$salt$hex" and "pbkdf2:sha256:n$salt$hex".
PASSWORD_HASH = re.compile(r"(scrypt|pbkdf2):[A-Za-z0-9:]+\$[^$,\s]+\$[0-9a-f]+")

MIN_CREDENTIAL_LENGTH = 16
"""Credentials this service checks (webhook secrets, METRICS_TOKEN): long enough that nobody
guesses one through the 401s."""
MIN_SECRET_LENGTH = 8
"""Secrets it presents (the Pax8 client's, the vendor's token): at least what the log and
Sentry scrubber masks (it skips values under 4 characters, which would blank ordinary words)."""
MIN_SCRYPT_COST = 32768 * 8
"""scrypt's n × r × p at least werkzeug's default (n=32768, r=8, p=1: 32 MiB per check)."""
MIN_PBKDF2_ITERATIONS = {"sha256": 600_000, "sha512": 210_000}
"""pbkdf2's iterations at least OWASP's (2023); other digests (sha1, md5) are refused."""


def weak_hash(password_hash: str) -> str | None:
    """Why a werkzeug password hash is too cheap to guess against, or None when it is not."""
    method = password_hash.split("$", 1)[0]
    kind, *params = method.split(":")
    try:
        if kind == "scrypt":
            if not params:
                return None  # werkzeug's default
            n, r, p = (int(x) for x in params)
            if n * r * p < MIN_SCRYPT_COST:
                return f"scrypt with n*r*p = {n * r * p} (at least {MIN_SCRYPT_COST})"
            return None
        digest, *rounds = params
        least = MIN_PBKDF2_ITERATIONS.get(digest)
        if least is None:
            return f"pbkdf2 with {digest[:16]} (sha256 or sha512 only)"
        if rounds and int(rounds[0]) < least:
            return f"pbkdf2:{digest} with {int(rounds[0])} iterations (at least {least})"
        return None
    except ValueError:
        return "an unreadable method"


class ConsoleUser(BaseModel):
    """One operator of the console: a name and a werkzeug password hash (never a password)."""

    name: str
    password_hash: SecretStr


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(variable, problem)
        self.variable = variable
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.variable}: {self.problem}"


class Settings(BaseSettings):
    """All configuration of the fulfillment worker: the reference (``docs/configuration.md``)
    is made from these fields; the rules are ``docs/architecture.md#settings``."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # ``PAX8_CLIENT_ID=`` (as compose files often have) means unset, not "".
        env_ignore_empty=True,
    )

    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="Broker, ledger and locks: redis:// or rediss:// (Celery's Redis broker has "
        "no unix://).",
    )
    pax8_api_url: str = Field("https://api.pax8.com/v2", description="Provisioning API base.")
    pax8_token_url: str = Field("https://api.pax8.com/v1/token", description="OAuth2 token URL.")
    pax8_client_id: str | None = Field(None, description="Production client id.")
    pax8_client_secret: SecretStr | None = Field(None, description="Production client secret.")
    pax8_simulation_client_id: str | None = Field(None, description="Simulation client id.")
    pax8_simulation_client_secret: SecretStr | None = Field(
        None, description="Simulation client secret."
    )
    pax8_webhook_secrets: SecretList = Field(
        default_factory=list,
        description="Accepted production webhook credentials, comma-separated.",
    )
    pax8_simulation_webhook_secrets: SecretList = Field(
        default_factory=list,
        description="Accepted simulation webhook credentials, comma-separated: valid only with "
        "isSimulation: true.",
    )
    pax8_webhook_header: str = Field(
        "pax8ApiTokenV1", description="Header carrying the webhook credential."
    )
    public_url: str | None = Field(
        None,
        description="Where Pax8 reaches this deployment: the receiver's public base URL "
        "(https://fulfil.example.com); its webhook configurations must point at "
        "PUBLIC_URL/webhooks/pax8 (fulfill doctor checks they do).",
    )
    pax8_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one Pax8 call.")

    cloudblue_webhook_secrets: SecretList = Field(
        default_factory=list,
        description="Accepted CloudBlue request-URL credentials, comma-separated; the routes are "
        "off when empty. A call presents one in CLOUDBLUE_WEBHOOK_HEADER, as Authorization: "
        "Bearer, or as the Basic password in the URL.",
    )
    cloudblue_webhook_header: str = Field(
        "X-Fulfillment-Token", description="Header carrying the CloudBlue credential."
    )
    cloudblue_response_timeout_seconds: float = Field(
        25.0,
        gt=0,
        description="How long a CloudBlue call waits for its outcome before a 503 (the "
        "platform's retry is answered from the ledger); keep it below the platform's own "
        "timeout. The receiver's graceful stop lasts this plus 5 s: give your platform's stop "
        "at least that (compose: stop_grace_period).",
    )

    vendor_adapter: str = Field("example", description="example, http or package.module:Class.")
    simulation_vendor_adapter: str | None = Field(
        None, description="Adapter for simulated orders; defaults to VENDOR_ADAPTER."
    )
    vendor_http_url: str | None = Field(None, description="The http adapter's target URL.")
    vendor_http_token: SecretStr | None = Field(
        None, description="The http adapter's bearer token."
    )
    vendor_http_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "http adapter: deadline of a whole call (connect, send, the whole answer); a call "
            "cut short is not repeated before it has passed."
        ),
    )
    vendor_http_max_answer_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description=(
            "http adapter: the most of an answer's body read; a 2xx beyond it holds the order "
            "(its ids cannot be read) with an alert, never a Success or a Fail."
        ),
    )

    # -- several backends (docs/routes.md) ---------------------------------------------
    vendor_routes: Path | None = Field(
        None,
        description="A routes file (TOML, docs/routes.md): which backend provisions each Pax8 "
        "productId and CloudBlue MPN, each with its adapter and settings for production and "
        "simulation, and where an unlisted product goes. It replaces VENDOR_ADAPTER, "
        "SIMULATION_VENDOR_ADAPTER and VENDOR_HTTP_URL (set none of them with it).",
    )
    worker_routes: RouteList = Field(
        default_factory=list,
        description="Routes of the routes file this worker serves alone, comma-separated: it "
        "consumes their queues and nothing else (a bulkhead: a backend that hangs holds up "
        "only its own worker). Unset: every queue.",
    )
    worker_exclude_routes: RouteList = Field(
        default_factory=list,
        description="Routes this worker leaves to workers of their own, comma-separated: it "
        "consumes every queue but theirs (the worker of everything else: reports, "
        "reconciliation, usage and the other routes).",
    )

    reconcile_interval_seconds: float = Field(
        300.0,
        gt=0,
        description="Beat period of reconciliation (whole minutes for Sentry Crons).",
    )
    reconcile_page_size: int = Field(
        100, ge=1, le=1000, description="Page size when listing unfulfilled requests."
    )
    reconcile_lock_seconds: float | None = Field(
        None,
        gt=0,
        description="Expiry of the reconciliation lock; must exceed TASK_TIME_LIMIT_SECONDS. "
        "Unset: max(2 × the interval, the hard limit + 30 s).",
    )
    doctor_interval_seconds: float = Field(
        300.0,
        ge=0,
        description="How often beat runs fulfill doctor's checks and stores them for the "
        "metrics and the console (0: never).",
    )

    # -- usage reporting (docs/usage.md) ---------------------------------------------
    usage_reporting: bool = Field(
        False,
        description="Post every subscription's usage (the adapter's usage source) to Pax8's "
        "Usage API daily, in both environments: beat schedules the check, workers post "
        "(docs/usage.md).",
    )
    usage_run_at: str = Field(
        "02:00", description="UTC time of day (HH:MM) from which the daily usage run starts."
    )
    usage_check_interval_seconds: float = Field(
        600.0,
        gt=0,
        description="How often beat checks whether the day's usage run is due, resumes one "
        "a crash left unfinished, and checks what is overdue.",
    )
    usage_posts_per_minute: int = Field(
        900,
        ge=1,
        le=1_000_000,
        description="Usage posts per minute across every worker (Pax8 allows 1,000).",
    )
    usage_overdue_after_hours: float = Field(
        12.0,
        ge=0,
        lt=48,
        description="Hours into the 1st of a month (UTC; 12 is noon) after which a "
        "subscription still without its previous period's closing totals raises the usage "
        "alert.",
    )
    usage_max_retries: int = Field(
        8,
        ge=0,
        description="Retries of one subscription's usage post in a day's run (429, 5xx, timeouts).",
    )
    usage_chunk_size: int = Field(
        10, ge=1, le=1000, description="Subscriptions posted by one task of a day's run."
    )
    usage_record_days: float = Field(
        400.0,
        gt=0,
        description="Days the record of each usage post (lines sent, Pax8's answer) is kept.",
    )
    pax8_usage_api_url: str | None = Field(
        None, description="The Usage API's base URL; PAX8_API_URL when unset."
    )
    usage_clock_file: Path | None = Field(
        None,
        description="Tests and demos only: read usage reporting's 'now' (ISO 8601) from "
        "this file instead of the system clock (the sandbox's --clock-file reads the same).",
    )
    vendor_http_usage_url: str | None = Field(
        None,
        description="The http adapter's usage source URL (vendors/http-api.yaml); required "
        "with USAGE_REPORTING and the http adapter.",
    )

    @field_validator("usage_run_at")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError("must be a UTC time of day, HH:MM (00:00-23:59)")
        return value

    ledger_retention_days: float = Field(
        30.0,
        ge=0,
        description="Days a reported order stays in the ledger (reconciliation purges older "
        "ones; 0 keeps them forever).",
    )

    task_soft_time_limit_seconds: float = Field(120.0, gt=0, description="Soft limit per task.")
    task_time_limit_seconds: float = Field(150.0, gt=0, description="Hard limit per task.")
    visibility_timeout_seconds: float = Field(
        3600.0,
        gt=0,
        description="The last resort: Redis redelivers a message still unacknowledged after "
        "this long whoever holds it. A dead worker's messages come back sooner, once its "
        "heartbeat is gone (WORKER_LOST_AFTER_SECONDS); this one covers a message with no "
        "recorded holder (taken by a worker of 0.1.0). Must exceed RETRY_BACKOFF_MAX_SECONDS "
        "+ TASK_TIME_LIMIT_SECONDS, since a live worker holds a countdown retry that long.",
    )
    worker_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How often a worker's main process records in Redis that it lives, and "
        "looks for workers that do not (one script call).",
    )
    worker_lost_after_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="A worker whose heartbeat is older than this is gone: the messages it "
        "held (running, prefetched or waiting for a countdown) go back to their queues, and "
        "an order in flight whose message is nowhere in Redis this long is queued again. At "
        "least 3 × WORKER_HEARTBEAT_SECONDS; a worker judges others only after beating this "
        "long itself without a gap (a Redis failover declares nobody dead).",
    )
    worker_pool: Literal["prefork", "gevent"] = Field(
        "prefork",
        description="The worker's pool (the Procfile passes it to celery as --pool): prefork, "
        "one process per order in flight, for adapters that compute or call blocking C "
        "libraries; gevent, hundreds of orders in flight in one process, for adapters whose "
        "calls are network I/O through Python sockets (httpx, requests, redis-py). Choosing "
        "a pool: docs/scaling.md.",
    )
    worker_concurrency: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Orders one worker runs at once: pool processes (prefork) or greenlets "
        "(gevent). Unset: 2 with prefork, 100 with gevent. Bounded by the time limits, not "
        "the CPU: in-flight calls ≈ order rate × vendor latency.",
    )
    vendor_max_in_flight: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Most vendor calls in flight at once at each backend (each route, and "
        "its simulation backend apart), across every worker of the deployment: a slow "
        "vendor is not driven into the ground by a burst. An order that finds its backend "
        "full waits in the queue (handed back with a short countdown that spends no retry), "
        "not in a worker slot. 0: no cap (and no Redis work for it). docs/scaling.md.",
    )
    provision_max_retries: int = Field(10, ge=0, description="Transient retries of a vendor call.")
    report_max_retries: int = Field(10, ge=0, description="Transient retries of a result post.")
    retry_backoff_seconds: float = Field(
        2.0, gt=0, description="First retry delay (exponential backoff, with jitter)."
    )
    retry_backoff_max_seconds: float = Field(
        600.0, gt=0, description="Largest retry delay (exponential backoff, with jitter)."
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        description="Times a task may die with its worker (deliveries of one message) before "
        "the order is dead.",
    )
    redis_socket_timeout_seconds: float = Field(
        2.0,
        gt=0,
        description="Socket timeout of Redis calls made while answering a webhook (a 503 after "
        "it).",
    )

    # -- high availability ------------------------------------------------------------
    # With sentinels every Redis user (broker, ledger, locks, the CLI) asks them for the
    # current master; REDIS_URL still gives the database, the credentials and TLS (its
    # host and port are then unused). REDIS_WAIT_REPLICAS makes a write count only once
    # that many replicas confirmed it (Redis WAIT): the receiver's 202, the claim before a
    # vendor call, the outcome after it and a result marked posting before its POST.
    redis_sentinels: SentinelList = Field(
        default_factory=list,
        description="Redis Sentinels, host:port,host:port,...; every Redis user follows "
        "the master they name (REDIS_URL still gives the database, password and TLS; its "
        "host and port are unused).",
    )
    redis_sentinel_master: str | None = Field(
        None, description="The master's name at the sentinels (REDIS_SENTINELS)."
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, description="The sentinels' own password (their requirepass), if any."
    )
    redis_wait_replicas: int = Field(
        0,
        ge=0,
        le=64,
        description="Replicas that must confirm a write before it counts (Redis WAIT): the "
        "receiver answers 202 only once they hold the record and its task (else 503); "
        "workers confirm a claim before calling the vendor, the outcome after it and a "
        "result's posting mark before its POST.",
    )
    redis_wait_timeout_ms: int = Field(
        500,
        ge=1,
        description="How long a write waits for those replicas (Redis WAIT); must be below "
        "REDIS_SOCKET_TIMEOUT_SECONDS.",
    )
    ledger_migrate_at_start: bool = Field(
        True,
        description="Whether a process that finds the ledger at an older schema migrates it "
        "as it starts (under a lock; only migrations the older release's processes can run "
        "beside). Off: it exits with one line, and `fulfill migrate` migrates. See "
        "docs/upgrading.md.",
    )

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinel_addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [_host_port(part.strip()) for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_sentinel_master")
    @classmethod
    def _master_name(cls, value: str | None) -> str | None:
        if value is not None and not _MASTER_NAME.fullmatch(value):
            raise ValueError("must be a Sentinel master name: letters, digits, '.', '_', '-'")
        return value

    @model_validator(mode="after")
    def _high_availability(self) -> Settings:
        if self.redis_sentinels and self.redis_sentinel_master is None:
            raise ValueError(
                "REDIS_SENTINEL_MASTER is required with REDIS_SENTINELS (the name the "
                "sentinels monitor the master under)"
            )
        if self.redis_sentinel_master is not None and not self.redis_sentinels:
            raise ValueError("REDIS_SENTINELS is required with REDIS_SENTINEL_MASTER")
        if self.redis_sentinel_password is not None and not self.redis_sentinels:
            raise ValueError("REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not")
        if self.redis_wait_replicas and (
            self.redis_wait_timeout_ms >= self.redis_socket_timeout_seconds * 1000
        ):
            # The receiver's socket would give up before WAIT answers: every webhook would
            # be a 503 after the socket timeout, even with every replica up.
            raise ValueError(
                "REDIS_WAIT_TIMEOUT_MS must be below REDIS_SOCKET_TIMEOUT_SECONDS "
                f"({self.redis_socket_timeout_seconds * 1000:g} ms)"
            )
        return self

    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; off when unset.")
    sentry_environment: str | None = Field(None, description="Sentry environment name.")
    log_level: str = Field(
        "INFO", description="Python log level: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    log_format: Literal["text", "json"] = Field("text", description="text or json log lines.")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token a metrics scrape must carry on every exporter port (401 "
        "without it); required for METRICS_HOST beyond loopback.",
    )

    # -- metrics and console --
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address the metrics exporters listen on; beyond loopback needs METRICS_TOKEN.",
    )
    web_metrics_port: int = Field(
        9101, ge=0, le=65535, description="The receiver's exporter port (gunicorn master; 0: off)."
    )
    worker_metrics_port: int = Field(
        9102, ge=0, le=65535, description="A worker's exporter port (Celery main process; 0: off)."
    )
    beat_metrics_port: int = Field(
        9103,
        ge=0,
        le=65535,
        description="Beat's exporter port: the ledger, queues and reconciliation (0: off).",
    )
    console_host: str = Field(
        "127.0.0.1", description="Address the console listens on; beyond loopback needs users."
    )
    console_port: int = Field(8090, ge=1, le=65535, description="The operator console's port.")
    console_users: Annotated[list[ConsoleUser], NoDecode] = Field(
        default_factory=list,
        description="Console users as name:hash,... (werkzeug password hashes: fulfill "
        "console-user NAME prints one); when set, every console request needs HTTP basic auth.",
    )
    console_anonymous: bool = Field(
        False,
        description="Serve the console without users, to loopback clients only (development: "
        "fulfill dev sets it); without it the console needs CONSOLE_USERS to start. Never "
        "behind a proxy, which would make every visitor local.",
    )
    console_proxies: int = Field(
        0,
        ge=0,
        le=8,
        description="Reverse proxies in front of the console: their X-Forwarded-For and "
        "X-Forwarded-Proto are trusted (the client address of sign-in throttling, https for "
        "the Secure session cookie); needs CONSOLE_USERS.",
    )
    port: int = Field(8000, ge=1, le=65535, description="The receiver's port (Procfile).")
    web_body_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long the receiver waits for a request's whole body once its headers "
        "came (408 after it, and the connection closed): a client that declares a body and "
        "stalls holds a connection no longer.",
    )

    @field_validator(
        "pax8_webhook_secrets",
        "pax8_simulation_webhook_secrets",
        "cloudblue_webhook_secrets",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "pax8_webhook_secrets",
        "pax8_simulation_webhook_secrets",
        "cloudblue_webhook_secrets",
        "metrics_token",
    )
    @classmethod
    def _strong_credentials(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items, 1):
            if isinstance(item, SecretStr):
                length = len(item.get_secret_value())
                if length < MIN_CREDENTIAL_LENGTH:
                    # Its length and place, never the value.
                    which = f"credential {index}" if isinstance(value, list) else "the token"
                    raise ValueError(
                        f"{which} is only {length} characters: at least {MIN_CREDENTIAL_LENGTH} "
                        "(a random one: openssl rand -hex 24)"
                    )
        return value

    @field_validator(
        "pax8_client_secret",
        "pax8_simulation_client_secret",
        "vendor_http_token",
        "redis_sentinel_password",
    )
    @classmethod
    def _maskable_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"only {len(value.get_secret_value())} characters: at least {MIN_SECRET_LENGTH} "
                "(shorter ones cannot be told from ordinary words when logs are scrubbed)"
            )
        return value

    @field_validator("console_users", mode="before")
    @classmethod
    def _users(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        users: list[ConsoleUser] = []
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            name, _, password_hash = entry.partition(":")
            if not USER_NAME.fullmatch(name):
                raise ValueError(
                    "each entry is name:hash, the name 1-64 letters, digits, '.', '_', '@' or '-'"
                )
            if not PASSWORD_HASH.fullmatch(password_hash):
                # Never echo the entry: it could be a password pasted by mistake.
                raise ValueError(
                    f"the entry of {name} is not name:hash with a werkzeug password hash "
                    "(make one with: fulfill console-user NAME)"
                )
            weak = weak_hash(password_hash)
            if weak:
                raise ValueError(
                    f"the hash of {name} is too cheap to guess against: {weak}; make one with "
                    "fulfill console-user NAME"
                )
            if any(user.name == name for user in users):
                raise ValueError(f"{name} is listed twice")
            users.append(ConsoleUser(name=name, password_hash=SecretStr(password_hash)))
        return users

    @field_validator("metrics_host", "console_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value != "localhost":
            try:
                ipaddress.ip_address(value.strip("[]"))
            except ValueError:
                raise ValueError("must be an IP address to listen on (or localhost)") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value.startswith("unix://"):
            # redis-py reads it, but Celery's Redis broker (kombu) has no unix:// scheme:
            # the receiver would queue orders that no worker could consume.
            raise ValueError("unix sockets are not supported; use redis:// or rediss://")
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator(
        "pax8_api_url",
        "pax8_token_url",
        "vendor_http_url",
        "pax8_usage_api_url",
        "vendor_http_usage_url",
        "public_url",
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("worker_routes", "worker_exclude_routes", mode="before")
    @classmethod
    def _route_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    _routes: Routes | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _routes_file(self, info: ValidationInfo) -> Settings:
        """Read and check ``VENDOR_ROUTES`` now, so a bad file stops every process at start
        (tokens come from the environment, or from an explicit ``environ``: tests)."""
        served = [
            ("WORKER_ROUTES", self.worker_routes),
            ("WORKER_EXCLUDE_ROUTES", self.worker_exclude_routes),
        ]
        if self.worker_routes and self.worker_exclude_routes:
            raise ValueError(
                "WORKER_ROUTES and WORKER_EXCLUDE_ROUTES are both set: a worker serves some "
                "routes alone, or everything but some: choose one"
            )
        if self.vendor_routes is None:
            for variable, names in served:
                if names:
                    raise ValueError(f"{variable} names routes, but VENDOR_ROUTES is not set")
            return self
        replaced = [
            name
            for name in (
                "vendor_adapter",
                "simulation_vendor_adapter",
                "vendor_http_url",
                "vendor_http_usage_url",
            )
            if name in self.model_fields_set
        ]
        if replaced:
            variable = replaced[0].upper()
            raise ValueError(
                f"VENDOR_ROUTES is set together with {variable}: the routes file names every "
                f"backend (its default_route takes VENDOR_ADAPTER's place); unset {variable}"
            )
        context = info.context if isinstance(info.context, dict) else {}
        environ = context.get("environ")
        if environ is None:
            environ = _process_environ(self.model_config.get("env_file"))
        defaults = HttpDefaults(self.vendor_http_timeout_seconds, self.vendor_http_max_answer_bytes)
        try:
            routes = load_routes(self.vendor_routes, environ, defaults)
        except RoutesError as exc:
            raise ValueError(f"VENDOR_ROUTES {exc}") from None
        for variable, names in served:
            for name in names:
                if routes.get(name) is None:
                    raise ValueError(
                        f"{variable} {name} is not a route of {self.vendor_routes} "
                        f"({', '.join(routes.names)})"
                    )
        self._routes = routes
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        pairs = [
            ("pax8_client_id", "pax8_client_secret"),
            ("pax8_simulation_client_id", "pax8_simulation_client_secret"),
        ]
        for id_field, secret_field in pairs:
            has_id = getattr(self, id_field) is not None
            has_secret = getattr(self, secret_field) is not None
            if has_id != has_secret:
                missing = secret_field if has_id else id_field
                raise ValueError(f"{missing.upper()} is required together with the other")
        if self.task_soft_time_limit_seconds >= self.task_time_limit_seconds:
            raise ValueError("TASK_SOFT_TIME_LIMIT_SECONDS must be below TASK_TIME_LIMIT_SECONDS")
        if (
            self.reconcile_lock_seconds is not None
            and self.reconcile_lock_seconds <= self.task_time_limit_seconds
        ):
            raise ValueError(
                "RECONCILE_LOCK_SECONDS must exceed TASK_TIME_LIMIT_SECONDS, or a slow run "
                "could outlive its lock and overlap the next"
            )
        if self.worker_lost_after_seconds < 3 * self.worker_heartbeat_seconds:
            raise ValueError(
                "WORKER_LOST_AFTER_SECONDS must be at least 3 × WORKER_HEARTBEAT_SECONDS "
                f"({3 * self.worker_heartbeat_seconds:g}s): one late heartbeat must not make "
                "a live worker look gone"
            )
        # A retry's message is held (unacknowledged) through its countdown and its run:
        # both together must end before Redis would hand the message to another worker.
        longest = self.retry_backoff_max_seconds + self.task_time_limit_seconds
        if self.visibility_timeout_seconds <= longest:
            raise ValueError(
                "VISIBILITY_TIMEOUT_SECONDS must exceed RETRY_BACKOFF_MAX_SECONDS + "
                f"TASK_TIME_LIMIT_SECONDS ({longest:g}s), or Redis redelivers running tasks"
            )
        return self

    # -- derived values ---------------------------------------------------------------

    @property
    def simulation_adapter(self) -> str:
        """The adapter spec used for simulated orders (with a routes file: the default
        route's)."""
        if self._routes is not None and self._routes.from_file:
            default = self._routes.get(self._routes.default or "")
            return default.simulation.adapter if default else "none (unknown products refused)"
        return self.simulation_vendor_adapter or self.vendor_adapter

    @property
    def routes(self) -> Routes:
        """Every backend and where each product's orders go: the routes file, or the one
        route of ``VENDOR_ADAPTER`` (``config/routes.py``)."""
        if self._routes is None:
            self._routes = single_route(self._env_backend(False), self._env_backend(True))
        return self._routes

    def _env_backend(self, simulation: bool) -> Backend:
        """The default route's backend without a routes file (``VENDOR_ADAPTER``…)."""
        spec = self.simulation_adapter if simulation else self.vendor_adapter
        if spec != "http":
            return Backend(DEFAULT_ROUTE, simulation, spec)
        return Backend(
            DEFAULT_ROUTE,
            simulation,
            spec,
            url=self.vendor_http_url,
            token=self.vendor_http_token,
            timeout_seconds=self.vendor_http_timeout_seconds,
            max_answer_bytes=self.vendor_http_max_answer_bytes,
            usage_url=self.vendor_http_usage_url,
        )

    def serves(self, route: str) -> bool:
        """Whether this worker consumes ``route``'s queue (``WORKER_ROUTES``,
        ``WORKER_EXCLUDE_ROUTES``; every route when neither is set)."""
        if self.worker_routes:
            return route in self.worker_routes
        return route not in self.worker_exclude_routes

    @property
    def pool_concurrency(self) -> int:
        """``WORKER_CONCURRENCY``, or the default of ``WORKER_POOL``
        (:data:`POOL_CONCURRENCY`)."""
        return self.worker_concurrency or POOL_CONCURRENCY[self.worker_pool]

    @property
    def claim_lease_seconds(self) -> float:
        """How long a claim or a lock lasts if its holder dies: past the hard limit, when
        the holder is surely gone."""
        return self.task_time_limit_seconds + 30

    @property
    def reconcile_lock_ttl(self) -> float:
        """How long a reconcile lock lives if its holder dies."""
        if self.reconcile_lock_seconds is not None:
            return self.reconcile_lock_seconds
        # Long enough that a run never outlives its lock (the hard limit kills it first).
        return max(2 * self.reconcile_interval_seconds, self.claim_lease_seconds)

    @property
    def reconcile_budget_seconds(self) -> float:
        """How long one reconciliation may work before it stops (the next run goes on)."""
        return 0.8 * self.task_soft_time_limit_seconds

    @property
    def max_countdown_seconds(self) -> float:
        """The longest retry delay a server's Retry-After may ask for (see the check above)."""
        return self.visibility_timeout_seconds - self.task_time_limit_seconds - 1.0

    @property
    def stuck_after_seconds(self) -> float:
        """Age after which a queued or provisioning record counts as stranded whatever its
        message's fate: the last net, after the visibility timeout would have brought any
        message back (a lost one is queued again much sooner: ``worker/liveness.py``)."""
        return self.visibility_timeout_seconds + self.task_time_limit_seconds

    @property
    def usage_api_url(self) -> str:
        """Where the Usage API is (``PAX8_USAGE_API_URL``, else ``PAX8_API_URL``)."""
        return self.pax8_usage_api_url or self.pax8_api_url

    def has_credentials(self, simulation: bool) -> bool:
        """Whether the production (or simulation) OAuth2 client is configured."""
        if simulation:
            return self.pax8_simulation_client_id is not None
        return self.pax8_client_id is not None

    def _require_console(self) -> None:
        """Users, unless anonymous loopback is asked for by name (and nothing proxies it)."""
        if self.console_users:
            if self.console_anonymous:
                raise ConfigError(
                    "CONSOLE_ANONYMOUS", "set together with CONSOLE_USERS: choose one"
                )
            return
        if not is_loopback(self.console_host):
            raise ConfigError(
                "CONSOLE_USERS",
                f"required to listen on {self.console_host} (beyond loopback): the console "
                "can replay orders (fulfill console-user NAME makes an entry)",
            )
        if not self.console_anonymous:
            raise ConfigError(
                "CONSOLE_USERS",
                "required (fulfill console-user NAME makes an entry); or CONSOLE_ANONYMOUS=true "
                "for a console only this machine's browser uses, never behind a proxy (a proxy "
                "on this host would open it to everyone it serves)",
            )
        if self.console_proxies:
            raise ConfigError(
                "CONSOLE_PROXIES", "a console behind a proxy needs CONSOLE_USERS, not anonymous"
            )

    def require(self, role: Role) -> None:
        """Check what ``role`` needs beyond parsing; raise :class:`ConfigError` if absent."""
        if role == "receiver":
            if not (
                self.pax8_webhook_secrets
                or self.pax8_simulation_webhook_secrets
                or self.cloudblue_webhook_secrets
            ):
                raise ConfigError(
                    "PAX8_WEBHOOK_SECRETS",
                    "no webhook credential configured (set it or "
                    "PAX8_SIMULATION_WEBHOOK_SECRETS); every webhook would get 401",
                )
        # Beat only schedules reconciliation (a worker runs it): it needs no Pax8 client.
        if role in ("worker", "pax8"):
            if not (self.has_credentials(False) or self.has_credentials(True)):
                raise ConfigError(
                    "PAX8_CLIENT_ID",
                    "no Pax8 credentials (set PAX8_CLIENT_ID/PAX8_CLIENT_SECRET or the "
                    "PAX8_SIMULATION_ pair); results could never be reported",
                )
        if role in ("receiver", "worker", "beat") and not is_loopback(self.metrics_host):
            if self.metrics_token is None:
                raise ConfigError(
                    "METRICS_HOST",
                    f"{self.metrics_host} is not loopback: set METRICS_TOKEN too, so only "
                    "your Prometheus can read the metrics",
                )
        if role == "console":
            self._require_console()
        if role == "worker" and self.vendor_routes is None:
            adapters = {self.vendor_adapter, self.simulation_adapter}
            if "http" in adapters and not self.vendor_http_url:
                raise ConfigError("VENDOR_HTTP_URL", "required by the http vendor adapter")
            if "http" in adapters and self.usage_reporting and not self.vendor_http_usage_url:
                raise ConfigError(
                    "VENDOR_HTTP_USAGE_URL",
                    "required by the http vendor adapter when USAGE_REPORTING is on (its "
                    "usage source)",
                )
        elif role == "worker":
            self._require_routes()

    def _require_routes(self) -> None:
        """What a worker needs of the routes it serves: their tokens (only theirs: a worker
        of one backend is given one backend's token) and, with usage reporting, a usage
        source for each http backend."""
        served = [route for route in self.routes if self.serves(route.name)]
        try:
            Routes({route.name: route for route in served}, None, self.vendor_routes).check_tokens()
        except RoutesError as exc:
            raise ConfigError("VENDOR_ROUTES", str(exc)) from None
        if not self.usage_reporting:
            return
        for route in served:
            for backend in route.backends:
                if backend.adapter == "http" and not backend.usage_url:
                    problem = RoutesError(
                        self.vendor_routes,
                        route.name,
                        f"{backend.environment}: the http adapter needs a usage_url when "
                        "USAGE_REPORTING is on (its usage source)",
                    )
                    raise ConfigError("VENDOR_ROUTES", str(problem))


def _first_error(exc: ValidationError) -> ConfigError:
    error = exc.errors()[0]
    location = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if location:
        return ConfigError(location[0].upper(), message)
    # Model-level checks put the variable's name first in their message.
    variable, _, rest = message.partition(" ")
    return ConfigError(variable, rest or message)


def build_settings(**overrides: Any) -> Settings:
    """Build settings from the environment plus ``overrides``; raise :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _first_error(exc) from None


class _Explicit(Settings):
    """Settings that read only the values they are given."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The values passed in, and nothing from the environment or a ``.env`` file."""
        return (init_settings,)


def explicit_settings(*, environ: Mapping[str, str] | None = None, **values: Any) -> Settings:
    """Settings from ``values`` and the defaults alone: no environment variable and no
    ``.env`` file is read (what every unit test builds, so a developer's shell or a stack's
    ``.env`` cannot change its outcome); raise :class:`ConfigError` as :func:`build_settings`.

    ``environ``: where the routes file's token variables are looked up (none by default).
    """
    try:
        return _Explicit.model_validate(values, context={"environ": dict(environ or {})})
    except ValidationError as exc:
        raise _first_error(exc) from None


def _process_environ(env_file: Any) -> dict[str, str]:
    """The variables a routes file's ``token_env`` may name: the ``.env`` file's (as the
    settings read it), then the environment's; empty ones count as unset."""
    values: dict[str, str] = {}
    if isinstance(env_file, str | Path) and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v})
    values.update({k: v for k, v in os.environ.items() if v})
    return values


def load_settings(role: Role | None = None, **overrides: Any) -> Settings:
    """Build and check settings for ``role``; on error print one line and exit(2)."""
    try:
        settings = build_settings(**overrides)
        if role is not None:
            settings.require(role)
    except ConfigError as exc:
        print(f"fulfillment: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return load_settings()
