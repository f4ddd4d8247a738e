"""Every Celery setting of the worker, spelled out in one place
(``docs/architecture.md#tasks-and-queues``).

Why each reliability setting is what it is:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only
  after its task returned; a worker killed mid-task leaves it to be redelivered.
* ``worker_prefetch_multiplier=1``: a worker holds one message per process (per greenlet
  with gevent), so a crash strands at most that many, and a slow order does not hold others
  hostage.
* ``worker_concurrency``: ``WORKER_POOL``'s concurrency
  (:attr:`~config.settings.Settings.pool_concurrency`); ``docs/scaling.md`` on choosing.
* ``visibility_timeout``: Redis redelivers an unacknowledged message after this long;
  it must exceed every countdown and time limit (checked by the settings), or a long
  task or a delayed retry would run twice. It is the last net only: a message whose
  holder's heartbeat is gone goes back within ``WORKER_LOST_AFTER_SECONDS`` plus two
  heartbeats (``worker/liveness.py``, ``worker/broker.py``), swept every heartbeat
  interval by the consumer's loop; kombu's own visibility sweep runs once a minute.
* JSON only, results ignored (the ledger is the state), bounded publish retries.
* With ``REDIS_SENTINELS`` the broker is kombu's Sentinel transport on the master they
  name (:func:`broker_settings`): ``sentinel://`` URLs without any credential, the
  password in ``broker_password`` (Celery masks it in banners and ``inspect conf``).
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from config.settings import Settings
from fulfillment.names import (
    DOCTOR,
    PROVISION_TASKS,
    RECONCILE,
    REPORT,
    USAGE_POST,
    USAGE_TICK,
    queues_with,
)
from fulfillment.runtime.clients import master_options, sentinel_options
from worker.messages import message_headers


def celery_config(settings: Settings) -> dict[str, Any]:
    """The ``app.conf`` mapping for ``settings``."""
    exchange = Exchange("fulfillment", type="direct")
    # Every queue is declared, so a worker without -Q (or WORKER_ROUTES) consumes them all.
    queues = [Queue(name, exchange, routing_key=name) for name in all_queues(settings)]
    routes = {name: {"queue": name, "routing_key": name} for name in PROVISION_TASKS.values()}
    routes[REPORT] = {"queue": REPORT, "routing_key": REPORT}
    for name in (RECONCILE, USAGE_TICK, USAGE_POST):
        routes[name] = {"queue": name, "routing_key": name}
    routes[DOCTOR] = {"queue": RECONCILE, "routing_key": RECONCILE}
    socket_timeout = settings.redis_socket_timeout_seconds
    # Each tick puts back the messages of the workers the heartbeat found gone (a memory
    # check when none is); every `scan_every`-th tick, kombu's visibility-timeout scan
    # (the last net, for messages with no recorded holder): once a minute, or a tenth of
    # a short timeout.
    restore_every = settings.worker_heartbeat_seconds
    scan_period = max(restore_every, min(60.0, settings.visibility_timeout_seconds / 10))
    scan_every = max(1, round(scan_period / restore_every))
    transport_options = {
        "visibility_timeout": settings.visibility_timeout_seconds,
        "socket_timeout": max(socket_timeout, 2.0),
        "socket_connect_timeout": socket_timeout,
        "socket_keepalive": True,
        "health_check_interval": 10,
        "retry_on_timeout": False,
        "unacked_restore_interval": restore_every,
        "unacked_restore_throttle": scan_every,
        # Each acknowledgement takes a connection from this pool, and kombu raises (does not
        # wait) when none is left: under gevent every order in flight may ack at once.
        "max_connections": settings.pool_concurrency + 10,
    }
    return {
        **broker_settings(settings, transport_options),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Publishing connections (retries, reports): one per order in flight at most.
        "broker_pool_limit": max(10, settings.pool_concurrency),
        "result_backend": None,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # The pool itself comes from --pool (the Procfile's ${WORKER_POOL}: celery patches for
        # gevent only when it reads it there, and warns if the configuration names it); the
        # start-up check compares it with WORKER_POOL (worker/pool.py).
        "worker_concurrency": settings.pool_concurrency,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": settings.task_soft_time_limit_seconds,
        "task_queues": queues,
        "task_routes": routes,
        "task_default_queue": REPORT,
        "task_default_exchange": "fulfillment",
        "task_create_missing_queues": False,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0.0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        # Events cost a publish per task state; Flower switches them on in the workers
        # while it runs (its --enable_events default), so nobody pays when nobody watches.
        "task_send_sent_event": False,
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_max_tasks_per_child": 10_000,
        "beat_schedule": beat_schedule(settings),
        "timezone": "UTC",
        "enable_utc": True,
    }


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """What beat starts: reconciliation every ``RECONCILE_INTERVAL_SECONDS``; the doctor's
    checks every ``DOCTOR_INTERVAL_SECONDS`` unless 0 (on the reconcile queue; a run that
    waited past its interval expires rather than pile up); and with ``USAGE_REPORTING`` the
    usage tick (the daily run is due from ``USAGE_RUN_AT``; each tick also resumes and
    checks it)."""
    schedule: dict[str, Any] = {
        "reconcile": {
            "task": RECONCILE,
            "schedule": settings.reconcile_interval_seconds,
            "options": {"queue": RECONCILE, "expires": settings.reconcile_interval_seconds},
        }
    }
    if settings.doctor_interval_seconds:
        schedule["doctor"] = {
            "task": DOCTOR,
            "schedule": settings.doctor_interval_seconds,
            "options": {"queue": RECONCILE, "expires": settings.doctor_interval_seconds},
        }
    if settings.usage_reporting:
        every = settings.usage_check_interval_seconds
        schedule["usage"] = {
            "task": USAGE_TICK,
            "schedule": every,
            "options": {"queue": USAGE_TICK, "expires": every},
        }
    for entry in schedule.values():  # what beat sends carries its format, as all messages do
        entry["options"]["headers"] = message_headers()
    return schedule


def all_queues(settings: Settings) -> tuple[str, ...]:
    """The per-type, report, reconcile and usage queues, and a queue per route of the routes
    file (``fulfillment/names.py``)."""
    return queues_with([route.name for route in settings.routes if route.own_queue])


def broker_settings(settings: Settings, transport_options: dict[str, Any]) -> dict[str, Any]:
    """``broker_url`` and its options: ``REDIS_URL``, or the sentinels (``REDIS_SENTINELS``)
    with the database, credentials and TLS of ``REDIS_URL``."""
    if not settings.redis_sentinels:
        return {"broker_url": settings.redis_url, "broker_transport_options": transport_options}
    master = master_options(settings)
    db = int(master.get("db") or 0)
    url = ";".join(
        f"sentinel://[{host}]:{port}/{db}" if ":" in host else f"sentinel://{host}:{port}/{db}"
        for host, port in settings.redis_sentinels
    )
    timeout = float(transport_options["socket_connect_timeout"])
    conf: dict[str, Any] = {
        "broker_url": url,
        "broker_transport_options": {
            **transport_options,
            "master_name": settings.redis_sentinel_master,
            "sentinel_kwargs": sentinel_options(settings, timeout),
        },
    }
    if master.get("password"):
        conf["broker_password"] = master["password"]
    if master.get("username"):
        conf["broker_user"] = master["username"]
    if master.get("ssl"):
        tls = {k: v for k, v in master.items() if k.startswith("ssl_")}
        # An empty mapping would mean "no TLS" to Celery: verify certificates by default.
        conf["broker_use_ssl"] = {"ssl_cert_reqs": "required", **tls}
    return conf
