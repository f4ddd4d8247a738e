"""What only the ledger and the broker know, read at scrape time (one Redis round trip).

Served by celery beat's exporter (one per deployment, as beat is), so these series do not
multiply with the receivers and workers; they are the same whichever process reads them.
When Redis does not answer, the scrape still succeeds with ``fulfillment_redis_up 0`` and
nothing else from here, so an alert can tell "no data" from "zero".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from fulfillment.ledger import RECONCILE_TOTALS, STATES, LedgerReader
from fulfillment.ledger.slots import VendorSlots
from fulfillment.ledger.states import FINISHED, IN_FLIGHT, State
from fulfillment.runtime.clients import REDIS_UNAVAILABLE
from fulfillment.runtime.metrics import RECONCILE_BUCKETS

WAITING = (*sorted(IN_FLIGHT, key=STATES.index), *sorted(FINISHED, key=STATES.index))
"""The states whose oldest record's age is exported (everything not yet reported or dead)."""

_TOTAL_HELP = {
    "seen": "Unfulfilled requests Pax8 listed, summed over reconciliation runs.",
    "enqueued": "Orders reconciliation enqueued (unknown to the ledger, or a new attempt).",
    "rereported": "Finished orders whose report reconciliation enqueued again.",
    "requeued": "Stuck orders reconciliation enqueued again.",
    "reopened": "Refused results reconciliation found owed again.",
    "errors": "Errors reconciliation runs reported.",
}


class LedgerCollector(Collector):
    """Orders by state and age, queue depth, and reconciliation, from Redis at each scrape."""

    def __init__(
        self,
        ledger: LedgerReader,
        queues: Sequence[str],
        reconcile_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.queues = tuple(queues)
        self.reconcile_interval = reconcile_interval
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        """The metrics of one scrape."""
        up = GaugeMetricFamily(
            "fulfillment_redis_up", "1 when the ledger's Redis answered this scrape, else 0."
        )
        try:
            metrics = list(self._read())
        except REDIS_UNAVAILABLE:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self) -> Iterable[Metric]:
        ledger = self.ledger
        depths, unacked_messages = ledger.queue_depths(self.queues)
        counts = ledger.counts()
        oldest = ledger.oldest(WAITING)
        runs, last = ledger.reconcile_runs()
        stats = ledger.reconcile_stats()
        now = self.clock()

        orders = GaugeMetricFamily(
            "fulfillment_orders", "Provision requests in the ledger, by state.", labels=["state"]
        )
        for state in STATES:
            orders.add_metric([state.value], counts.get(state, 0))
        yield orders

        ages = GaugeMetricFamily(
            "fulfillment_orders_oldest_age_seconds",
            "How long the longest-waiting order of each state has been in it (0: none).",
            labels=["state"],
        )
        for state in WAITING:
            since = oldest[state]
            ages.add_metric([state.value], max(0.0, now - since) if since else 0.0)
        yield ages

        finished = [
            since for state in (State.PROVISIONED, State.FAILED) if (since := oldest[state])
        ]
        unreported = GaugeMetricFamily(
            "fulfillment_unreported_oldest_age_seconds",
            "Age of the oldest vendor outcome not yet reported to Pax8 (0: none).",
        )
        unreported.add_metric([], max(0.0, now - min(finished)) if finished else 0.0)
        yield unreported

        queued = GaugeMetricFamily(
            "fulfillment_queue_messages", "Task messages waiting in each queue.", labels=["queue"]
        )
        for queue, depth in zip(self.queues, depths, strict=False):
            queued.add_metric([queue], int(depth))
        yield queued
        unacked = GaugeMetricFamily(
            "fulfillment_queue_unacked_messages",
            "Task messages a worker holds unacknowledged (running, or waiting for a countdown).",
        )
        unacked.add_metric([], unacked_messages)
        yield unacked

        yield from self._reconcile(runs, last, stats)

    def _reconcile(
        self, runs: int, last: dict[str, object] | None, stats: dict[str, float]
    ) -> Iterable[Metric]:
        total = CounterMetricFamily(
            "fulfillment_reconcile_runs", "Reconciliation runs that did work (not skipped)."
        )
        total.add_metric([], runs)
        yield total
        for name in RECONCILE_TOTALS:
            family = CounterMetricFamily(f"fulfillment_reconcile_{name}", _TOTAL_HELP[name])
            family.add_metric([], stats.get(name, 0.0))
            yield family
        cumulative, buckets = 0.0, []
        for bound in (*RECONCILE_BUCKETS, float("inf")):
            key = "+Inf" if bound == float("inf") else f"{bound:g}"  # as the ledger keeps it
            cumulative += stats.get(f"le:{key}", 0.0)
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        duration = HistogramMetricFamily(
            "fulfillment_reconcile_duration_seconds", "Duration of reconciliation runs."
        )
        duration.add_metric([], buckets, sum_value=stats.get("seconds", 0.0))
        yield duration
        interval = GaugeMetricFamily(
            "fulfillment_reconcile_interval_seconds",
            "RECONCILE_INTERVAL_SECONDS: how often beat starts a reconciliation.",
        )
        interval.add_metric([], self.reconcile_interval)
        yield interval
        if last is not None and isinstance(last.get("at"), int | float):
            at = GaugeMetricFamily(
                "fulfillment_reconcile_last_run_timestamp_seconds",
                "When the last reconciliation run ended (Unix time).",
            )
            at.add_metric([], float(last["at"]))  # type: ignore[arg-type]
            yield at


class SlotsCollector(Collector):
    """The vendor calls in flight at each capped backend (the slots held now, by every worker
    of the deployment), and its cap, read at each scrape."""

    def __init__(self, slots: VendorSlots, caps: Mapping[str, int]) -> None:
        self.slots = slots
        self.caps = dict(caps)
        self.backends = list(caps)

    def collect(self) -> Iterable[Metric]:
        """The metrics of one scrape (none when Redis does not answer: the ledger's
        ``fulfillment_redis_up`` says so)."""
        try:
            held = self.slots.in_flight(self.backends)
        except REDIS_UNAVAILABLE:
            return
        in_flight = GaugeMetricFamily(
            "fulfillment_vendor_calls_in_flight",
            "Vendor calls in flight at each capped backend (slots held, by every worker), by "
            "backend (the route; :sim its simulation backend).",
            labels=["backend"],
        )
        for backend in self.backends:
            in_flight.add_metric([backend], held.get(backend, 0))
        yield in_flight
        cap = GaugeMetricFamily(
            "fulfillment_vendor_calls_in_flight_max",
            "The most vendor calls in flight at each backend (VENDOR_MAX_IN_FLIGHT, or the "
            "route's max_in_flight).",
            labels=["backend"],
        )
        for backend in self.backends:
            cap.add_metric([backend], self.caps[backend])
        yield cap
