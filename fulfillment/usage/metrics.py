"""Usage reporting's metrics, read from Redis at each scrape of beat's exporter.

* ``fulfillment_usage_overdue_subscriptions{environment}``: subscriptions still without
  their previous period's closing totals past ``USAGE_OVERDUE_AFTER_HOURS`` into the 1st
  (as the latest beat tick found; alert ``FulfillmentUsageOverdue``);
* ``fulfillment_usage_posts_total{outcome}``: posts by Pax8's answer (``ok``,
  ``rate_limited``, ``failed``: 5xx or no answer, ``refused``: another 4xx);
* ``fulfillment_usage_lines_total``: lines Pax8 accepted;
* ``fulfillment_usage_jobs_total{outcome}``: subscription-periods by outcome;
* ``fulfillment_usage_run_pending_jobs`` and ``fulfillment_usage_last_run_timestamp_seconds``:
  the latest day's run.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from fulfillment.ledger.refs import Scope
from fulfillment.runtime.clients import REDIS_UNAVAILABLE
from fulfillment.usage.models import JobOutcome
from fulfillment.usage.store import UsageStore

ENVIRONMENTS = {Scope.PAX8: "production", Scope.PAX8_SIMULATION: "simulation"}
POST_OUTCOMES = ("ok", "rate_limited", "failed", "refused")


class UsageCollector(Collector):
    """The usage figures (see the module docstring); nothing when Redis does not answer
    (``fulfillment_redis_up`` says so)."""

    def __init__(self, store: UsageStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        """The metrics of one scrape."""
        try:
            return list(self._read())
        except REDIS_UNAVAILABLE:
            return []

    def _read(self) -> Iterable[Metric]:
        store = self.store
        _, _, counts = store.overdue()
        stats = store.stats()
        overdue = GaugeMetricFamily(
            "fulfillment_usage_overdue_subscriptions",
            "Subscriptions whose previous period's closing usage Pax8 still lacks past the "
            "deadline (the 1st at USAGE_OVERDUE_AFTER_HOURS), by environment.",
            labels=["environment"],
        )
        for scope, name in ENVIRONMENTS.items():
            overdue.add_metric([name], counts.get(scope, 0))
        yield overdue
        posts = CounterMetricFamily(
            "fulfillment_usage_posts",
            "Usage posts by Pax8's answer (ok, rate_limited: 429, failed: 5xx or no answer, "
            "refused: another 4xx).",
            labels=["outcome"],
        )
        for outcome in POST_OUTCOMES:
            posts.add_metric([outcome], stats.get(f"posts_{outcome}", 0))
        yield posts
        lines = CounterMetricFamily("fulfillment_usage_lines", "Usage lines Pax8 accepted.")
        lines.add_metric([], stats.get("lines_ok", 0))
        yield lines
        jobs = CounterMetricFamily(
            "fulfillment_usage_jobs",
            "Subscription periods of the daily runs, by outcome.",
            labels=["outcome"],
        )
        for outcome in JobOutcome:
            jobs.add_metric([outcome.value], stats.get(f"jobs_{outcome.value}", 0))
        yield jobs
        days = [d for d in store.days(5) if not d.startswith("manual-")]
        run = store.run(days[0]) if days else None
        pending = GaugeMetricFamily(
            "fulfillment_usage_run_pending_jobs", "Jobs of the latest day's usage run not finished."
        )
        pending.add_metric([], run.pending if run else 0)
        yield pending
        if run is not None:
            at = GaugeMetricFamily(
                "fulfillment_usage_last_run_timestamp_seconds",
                "When the latest day's usage run was planned (Unix time).",
            )
            at.add_metric([], run.created_at)
            yield at
