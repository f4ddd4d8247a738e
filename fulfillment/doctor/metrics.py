"""The scheduled doctor's report as metrics, read from Redis at scrape time by beat's exporter.

* ``fulfillment_doctor_check_status{check,backend}``: 0 ok, 1 warn, 2 fail, one series per
  check of the last run (``check`` is a name of :data:`fulfillment.doctor.run.NAMES`,
  ``backend`` a route of the routes file for a check run per backend, else empty: never a
  value from outside);
* ``fulfillment_doctor_last_run_timestamp_seconds``: when that run ended;
* ``fulfillment_doctor_interval_seconds``: ``DOCTOR_INTERVAL_SECONDS`` (0: not scheduled).

When Redis does not answer nothing is yielded here (the ledger's collector says
``fulfillment_redis_up 0``); before the first run only the interval is.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from fulfillment.doctor import store
from fulfillment.doctor.run import NAMES
from fulfillment.ledger import Ledger
from fulfillment.runtime.clients import REDIS_UNAVAILABLE


class DoctorCollector(Collector):
    """The last stored doctor report, at each scrape (one Redis GET)."""

    def __init__(self, ledger: Ledger, interval: float, backends: tuple[str, ...] = ()) -> None:
        self.ledger = ledger
        self.interval = interval
        self.backends = frozenset(backends)

    def collect(self) -> Iterable[Metric]:
        """The metrics of one scrape."""
        try:
            report = store.load(self.ledger)
        except REDIS_UNAVAILABLE:
            return
        interval = GaugeMetricFamily(
            "fulfillment_doctor_interval_seconds",
            "DOCTOR_INTERVAL_SECONDS: how often beat runs the doctor's checks (0: never).",
        )
        interval.add_metric([], self.interval)
        yield interval
        if report is None:
            return
        status = GaugeMetricFamily(
            "fulfillment_doctor_check_status",
            "The last scheduled doctor run, per check: 0 ok, 1 warn, 2 fail.",
            labels=["check", "backend"],
        )
        for check in report.checks:
            # A stored name is data: only the known ones (and the routes') are labels.
            if check.name in NAMES:
                backend = check.backend if check.backend in self.backends else ""
                status.add_metric([check.name, backend], check.status.level)
        yield status
        last = GaugeMetricFamily(
            "fulfillment_doctor_last_run_timestamp_seconds",
            "When the last scheduled doctor run ended (Unix time).",
        )
        last.add_metric([], report.at)
        yield last
