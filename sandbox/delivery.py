"""Webhook delivery: Pax8 POSTing Provision Notifications to the vendor, and retrying.

One delivery POSTs ``{"isSimulation", "provisionRequest", "provisionDetail",
"provisionAttempt"}`` to the URL of the attempt's webhook configuration, with the configured
header carrying the credential. A 2xx makes the attempt ``Acknowledged``; any other status, a
timeout, a connection error or no webhook configuration makes it ``Failed`` with an
``errorDetail``. Faults with the path ``webhook`` act here (see :mod:`sandbox.faults`); with
``hold_ack`` the 2xx is counted as ``Acknowledged`` only ``seconds`` later.

A *chain* is one notification and its retries: after a failed production delivery Pax8 waits
``retry_delay`` seconds and tries again with a NEW attempt (same detail), at most
``max_retries`` times. Simulation notifications and dropped ones are never retried. Chains run
on a small bounded thread pool; the waits between tries sit in a single scheduler thread, so
a thousand failing chains do not hold a thousand threads. ``reset`` ends every chain at its
next step, so a reset between tests leaves no delivery behind.
"""

import heapq
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from sandbox.config import SandboxConfig
from sandbox.errors import ApiError
from sandbox.faults import WEBHOOK, FaultRegistry
from sandbox.orders import iso
from sandbox.store import Store, Target

log = logging.getLogger(__name__)

USER_AGENT = "pax8-sandbox/1"


@dataclass(frozen=True)
class Outcome:
    """What one delivery came to."""

    acknowledged: bool
    status_code: int | None
    error: str | None
    dropped: bool = False


class Chain:
    """One notification and its retries; ``wait`` returns when no more tries will follow."""

    def __init__(self, environment: str, request_id: str, detail_id: str, attempt_id: str) -> None:
        self.environment = environment
        self.request_id = request_id
        self.detail_id = detail_id
        self.attempt_ids = [attempt_id]
        self._done = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the chain ended (acknowledged, out of retries, dropped or reset)."""
        return self._done.wait(timeout)

    def finish(self) -> None:
        """Mark the chain as ended."""
        self._done.set()

    @property
    def done(self) -> bool:
        """Whether the chain has ended."""
        return self._done.is_set()


class _Scheduler:
    """Runs callables after a delay, from one thread (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, delay: float, fn: Callable[[], None]) -> bool:
        """Run ``fn`` after ``delay`` seconds; False once closed."""
        with self._cond:
            if self._closed:
                return False
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), fn))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-retry-scheduler", daemon=True
                )
                self._thread.start()
            self._cond.notify()
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # the scheduler must outlive one bad callable
                log.exception("scheduled delivery step failed")

    def close(self) -> list[Callable[[], None]]:
        """Stop; return what was still waiting."""
        with self._cond:
            self._closed = True
            pending = [fn for _, _, fn in self._heap]
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(5)
        return pending


class _Workers:
    """A fixed set of daemon threads running submitted callables.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so a stopping
    sandbox would wait out every delivery in flight (up to the delivery timeout).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[[], None]) -> bool:
        """Queue ``fn``; False once shut down."""
        with self._lock:
            if self._closed:
                return False
            if not self._threads:
                for n in range(self._size):
                    thread = threading.Thread(
                        target=self._run, name=f"sandbox-delivery-{n}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
            self._queue.put(fn)
            return True

    def _run(self) -> None:
        while (fn := self._queue.get()) is not None:
            try:
                fn()
            except Exception:  # a worker must outlive one bad delivery
                log.exception("delivery task failed")

    def shutdown(self) -> None:
        """Stop taking work; idle threads end, busy ones end with the process."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)


def _fan_out(fn: Callable[[], Outcome], times: int) -> list[Outcome]:
    """Run ``fn`` ``times`` times at once on daemon threads; the outcomes in start order."""
    outcomes: list[Outcome | None] = [None] * times
    barrier = threading.Barrier(times)

    def run(index: int) -> None:
        barrier.wait()  # start together, so the copies really race at the receiver
        try:
            outcomes[index] = fn()
        except Exception:  # e.g. a reset removed the attempt meanwhile
            log.exception("duplicate delivery failed")

    threads = [
        threading.Thread(target=run, args=(i,), name="sandbox-duplicate", daemon=True)
        for i in range(times)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [o if o is not None else Outcome(False, None, "duplicate failed") for o in outcomes]


class Deliverer:
    """Delivers notifications, runs retry chains, sends duplicates; thread-safe."""

    def __init__(self, config: SandboxConfig, store: Store, faults: FaultRegistry) -> None:
        self._config = config
        self._store = store
        self._faults = faults
        # No keep-alive: every notification is its own connection, as from Pax8, and a vendor
        # restarted between two deliveries cannot leave a dead pooled connection behind.
        self._client = httpx.Client(
            timeout=config.delivery_timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            trust_env=False,
        )
        self._pool = _Workers(config.delivery_workers)
        self._scheduler = _Scheduler()
        self._lock = threading.Lock()
        self._generation = 0
        self._active: set[Chain] = set()
        self._closed = False

    # -- one delivery -----------------------------------------------------------------------

    def deliver(self, attempt_id: str, *, duplicate: bool = False) -> Outcome:
        """Deliver the notification of one attempt now, in this thread.

        The attempt's status is updated unless ``duplicate`` (a re-send of a notification
        whose fate is already decided, to test the vendor's deduplication).
        """
        target = self._store.delivery_target(attempt_id)
        started = time.monotonic()
        at = iso(datetime.now(UTC))
        rule = self._faults.fire("POST", WEBHOOK) if target.url is not None else None
        fault = rule.action if rule is not None else None
        status_code: int | None = None
        if target.url is None:
            outcome = Outcome(False, None, "no webhook configuration")
        elif rule is not None and rule.action == "drop":
            outcome = Outcome(False, None, "dropped", dropped=True)
        elif rule is not None and rule.action == "error":
            outcome = Outcome(False, rule.status, f"webhook answered HTTP {rule.status}")
        else:
            if rule is not None and rule.action == "delay":
                time.sleep(rule.seconds)
            outcome = self._post(target)
            if rule is not None and rule.action == "error_after":
                outcome = Outcome(False, rule.status, f"webhook answered HTTP {rule.status}")
            elif rule is not None and rule.action == "delay_after":
                time.sleep(rule.seconds)
        status_code = outcome.status_code
        if duplicate:
            pass
        elif outcome.acknowledged and rule is not None and rule.action == "hold_ack":
            # Still Issued meanwhile: a result posted now is refused, as by a slow Pax8.

            def acknowledge() -> None:
                self._store.set_attempt_status(attempt_id, "Acknowledged", None)

            if not self._scheduler.call_later(rule.seconds, acknowledge):
                acknowledge()  # closing: count it at once rather than never
        else:
            status = "Acknowledged" if outcome.acknowledged else "Failed"
            self._store.set_attempt_status(attempt_id, status, outcome.error)
        self._store.record_delivery(
            {
                "attemptId": attempt_id,
                "requestId": target.request_id,
                "environment": target.environment,
                "webhookId": target.webhook_id,
                "url": target.url,
                "statusCode": status_code,
                "error": outcome.error,
                "durationMs": round((time.monotonic() - started) * 1000, 3),
                "at": at,
                "dropped": outcome.dropped,
                "duplicate": duplicate,
                "fault": fault,
            }
        )
        return outcome

    def _post(self, target: Target) -> Outcome:
        assert target.url is not None and target.header is not None
        headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            (target.header, target.credential or ""),
        ]
        try:
            response = self._client.post(
                target.url, content=json.dumps(target.body).encode(), headers=headers
            )
        except httpx.TimeoutException:
            return Outcome(False, None, f"timed out after {self._config.delivery_timeout:g}s")
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"connection error: {type(exc).__name__}: {exc}")
        except Exception as exc:  # a URL httpx cannot even parse must not kill the chain
            return Outcome(False, None, f"could not deliver: {type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code, None)
        return Outcome(False, response.status_code, f"webhook answered HTTP {response.status_code}")

    # -- chains -----------------------------------------------------------------------------

    def start_chain(
        self, environment: str, request_id: str, attempt: dict[str, Any], retries: int
    ) -> Chain:
        """Deliver ``attempt`` in the background, then retry up to ``retries`` times."""
        chain = Chain(environment, request_id, attempt["provisionDetailId"], attempt["id"])
        with self._lock:
            if self._closed:
                chain.finish()
                return chain
            generation = self._generation
            self._active.add(chain)
        self._submit(lambda: self._step(chain, attempt["id"], retries, generation), chain)
        return chain

    def _submit(self, fn: Callable[[], None], chain: Chain) -> None:
        if not self._pool.submit(fn):  # shut down: the process is stopping
            self._end(chain)

    def _step(self, chain: Chain, attempt_id: str, retries: int, generation: int) -> None:
        try:
            if not self._current(generation):
                self._end(chain)
                return
            outcome = self.deliver(attempt_id)
            if outcome.acknowledged or outcome.dropped or retries <= 0:
                self._end(chain)
                return
            scheduled = self._scheduler.call_later(
                self._config.retry_delay,
                lambda: self._submit(lambda: self._retry(chain, retries, generation), chain),
            )
            if not scheduled:
                self._end(chain)
        except ApiError:  # the attempt vanished: a reset happened meanwhile
            self._end(chain)
        except Exception:
            log.exception("delivery of attempt %s failed", attempt_id)
            self._end(chain)

    def _retry(self, chain: Chain, retries: int, generation: int) -> None:
        if not self._current(generation):
            self._end(chain)
            return
        try:
            attempt = self._store.create_attempt(
                chain.environment, chain.request_id, "Issued", detail_id=chain.detail_id
            )
        except ApiError:
            self._end(chain)
            return
        chain.attempt_ids.append(attempt["id"])
        self._step(chain, attempt["id"], retries - 1, generation)

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation and not self._closed

    def _end(self, chain: Chain) -> None:
        with self._lock:
            self._active.discard(chain)
        chain.finish()

    # -- duplicates, reset, close -----------------------------------------------------------

    def duplicate(self, attempt_id: str, times: int) -> list[int | None]:
        """Send the same notification ``times`` times at once; the status codes it got."""
        self._store.delivery_target(attempt_id)  # 404 before starting threads
        outcomes = _fan_out(lambda: self.deliver(attempt_id, duplicate=True), times)
        return [o.status_code for o in outcomes]

    def duplicate_later(self, attempt_id: str, times: int) -> None:
        """Like :meth:`duplicate`, in the background."""

        def run() -> None:
            try:
                self.duplicate(attempt_id, times)
            except Exception:  # a reset may remove the attempt meanwhile
                log.exception("duplicate delivery of attempt %s failed", attempt_id)

        threading.Thread(target=run, name="sandbox-duplicates", daemon=True).start()

    def reset(self) -> None:
        """End every chain at its next step (the store is being cleared)."""
        with self._lock:
            self._generation += 1
            active = list(self._active)
            self._active.clear()
        for chain in active:
            chain.finish()

    def close(self) -> None:
        """Stop delivering: end every chain, stop the threads, close the HTTP client."""
        with self._lock:
            self._closed = True
        self._scheduler.close()
        self.reset()
        # Deliveries in flight are not waited for: closing the client fails them, and their
        # daemon threads end with the process anyway.
        self._pool.shutdown()
        self._client.close()
