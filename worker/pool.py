"""The worker's pool (``WORKER_POOL``): which pool runs, checked at start, and the soft time
limit that Celery's gevent pool leaves out.

Celery applies gevent's patches to the standard library only when it reads ``--pool gevent``
on its command line (before it imports anything else): the Procfile's ``worker`` line
passes ``--pool ${WORKER_POOL}``. A worker whose running pool is not the one the settings
name (a hand-written command line, a service file that kept ``--pool prefork``) would size
its connection pools and its time limits for the wrong pool, so it stops at start with one
line (:func:`pool_problem`).

Time limits under gevent (Celery 5.7's ``celery/concurrency/gevent.py``):

* the hard limit (``TASK_TIME_LIMIT_SECONDS``) is a ``gevent.Timeout`` raised inside the
  task's greenlet at its next switch, and Celery then handles it as a hard limit (the
  message is acknowledged as under prefork, whose hard limit kills the pool process);
* the soft limit is not implemented by Celery's gevent pool: :func:`soft_limit` raises
  :class:`~celery.exceptions.SoftTimeLimitExceeded` in the task's greenlet the same way, so
  the tasks' handling of it (a retry, the claim kept) is the same under both pools.

Both are raised where the greenlet yields (every socket operation does, once gevent patched
it). A greenlet that never yields (a blocking C library, a CPU loop) is not interrupted by
either, and holds up every other greenlet of its process: such an adapter belongs on the
prefork pool (``docs/scaling.md#choosing-a-pool``).

The sweep that puts back a gone worker's messages (``worker/broker.py``) is run by kombu
from the consumer's event loop, which a green pool has none of; without it kombu runs it
only when a poll finds nothing at all, which the consumer's own ``BRPOP`` (it answers
every second) never lets happen. :class:`GreenSweep` runs it on the consumer's timer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import bootsteps
from celery.exceptions import SoftTimeLimitExceeded

from config.settings import Settings


def running_pool(pool_cls: Any) -> str:
    """The name of the pool ``pool_cls`` (a class or what ``--pool`` said) implements:
    ``prefork``, ``gevent``, or the class's module and name for any other."""
    from celery import concurrency

    cls = concurrency.get_implementation(pool_cls)
    module = str(getattr(cls, "__module__", ""))
    if module.startswith("celery.concurrency."):
        return module.rsplit(".", 1)[-1]
    return f"{module}:{getattr(cls, '__qualname__', cls)}"


def pool_problem(settings: Settings, pool_cls: Any) -> str | None:
    """Why a worker running ``pool_cls`` must not start with ``settings``, or None."""
    running = running_pool(pool_cls)
    if running != settings.worker_pool:
        return (
            f"WORKER_POOL is {settings.worker_pool} but this worker runs the {running} pool: "
            f"start it with --pool {settings.worker_pool} (the Procfile's worker line passes "
            "--pool ${WORKER_POOL})"
        )
    if settings.worker_pool == "gevent":
        from gevent import monkey

        if not monkey.is_module_patched("socket"):
            return (
                "WORKER_POOL is gevent but the standard library is not patched (celery "
                "patches it only when --pool gevent is on its command line): a vendor call "
                "would block every order of this worker"
            )
    return None


@contextmanager
def soft_limit(settings: Settings, seconds: float | None) -> Iterator[None]:
    """Under gevent, raise :class:`SoftTimeLimitExceeded` in this greenlet after ``seconds``
    (Celery's gevent pool has no soft limit); under prefork, nothing (Celery's own)."""
    if settings.worker_pool != "gevent" or not seconds:
        yield
        return
    import gevent

    limit = SoftTimeLimitExceeded(f"soft time limit ({seconds:g}s) exceeded")
    with gevent.Timeout(seconds, limit):
        yield


class GreenSweep(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Under gevent, the broker's sweep every ``unacked_restore_interval`` (the heartbeat
    interval: ``worker/config.py``), as the event loop runs it under prefork."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def include_if(self, parent: Any) -> bool:
        """Only where there is no event loop (a green pool)."""
        return getattr(parent, "hub", None) is None

    def start(self, parent: Any) -> None:
        """Start ticking on the consumer's timer."""
        options = parent.app.conf.broker_transport_options or {}
        interval = float(options.get("unacked_restore_interval", 5.0))
        self.tref = parent.timer.call_repeatedly(interval, self.tick, (parent,))

    def tick(self, parent: Any) -> None:
        """One sweep, on the live connection (none while reconnecting: the next tick)."""
        connection = getattr(parent, "connection", None)
        cycle = getattr(getattr(connection, "transport", None), "cycle", None)
        if cycle is not None:
            cycle.maybe_restore_messages()

    def stop(self, parent: Any) -> None:
        """Stop ticking."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
