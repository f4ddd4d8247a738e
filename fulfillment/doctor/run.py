"""Run every check in order: :func:`run_checks`; the report of settings that do not load:
:func:`settings_report`; the scheduled run that stores its report: :func:`scheduled`.

A check that raises does not stop the others: a Redis outage is its row's ``fail`` ("see
the redis row"), anything else a ``fail`` saying the check itself broke. Every text is
scrubbed of the settings' secrets before it leaves here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from config.scrub import Scrubber
from config.settings import ConfigError, Role
from config.version import __version__
from fulfillment.doctor import store
from fulfillment.doctor.context import Doctor
from fulfillment.doctor.pax8_checks import (
    check_credentials,
    check_receiver,
    check_webhook,
    environment,
)
from fulfillment.doctor.process_checks import (
    check_beat,
    check_clocks,
    check_orders,
    check_queues,
)
from fulfillment.doctor.redis_checks import (
    check_durability,
    check_redis,
    check_replication,
    check_schema,
)
from fulfillment.doctor.result import Check, Finding, Report, Status, fail, ok
from fulfillment.doctor.vendor_checks import check_vendor
from fulfillment.runtime.clients import REDIS_UNAVAILABLE
from vendors.loader import Adapters

log = logging.getLogger(__name__)

ROLES: tuple[Role, ...] = ("receiver", "worker", "beat")


def check_settings(doctor: Doctor) -> Finding:
    """The settings load (they did, to get here) and every process kind would start with
    them: the receiver, the workers (their adapters resolve) and beat."""
    settings = doctor.settings
    try:
        for role in ROLES:
            settings.require(role)
        Adapters(settings).check()
    except ConfigError as exc:
        return fail(
            f"{exc}: that process refuses to start",
            f"fix {exc.variable} (fulfill doctor reads the same settings as the processes)",
        )
    return ok("loaded; the receiver, the workers and beat would start with them")


@dataclass(frozen=True)
class Spec:
    """One check: its stable name (the metric's label), its title, and its function."""

    name: str
    title: str
    run: Callable[[Doctor], Finding]


@dataclass(frozen=True)
class BackendSpec:
    """A check run once per route of the routes file (one row each, its ``backend`` the
    route's name); once, as it always was, without a routes file."""

    name: str
    title: str
    run: Callable[[Doctor, str], Finding]

    def specs(self, doctor: Doctor) -> list[tuple[Spec, str]]:
        """One plain check per route, with the route it is about."""
        routes = doctor.settings.routes
        if not routes.from_file:
            return [(Spec(self.name, self.title, self._bound(routes.names[0])), "")]
        return [
            (Spec(self.name, f"{self.title} ({name})", self._bound(name)), name)
            for name in routes.names
        ]

    def _bound(self, route: str) -> Callable[[Doctor], Finding]:
        def run(doctor: Doctor) -> Finding:
            return self.run(doctor, route)

        return run


def _each_environment(
    name: str, title: str, check: Callable[[Doctor, bool], Finding]
) -> tuple[Spec, Spec]:
    """The production and the simulation run of a check of one environment."""
    production, simulation = environment(False), environment(True)
    return (
        Spec(f"{name}_{production}", f"{title} ({production})", lambda d: check(d, False)),
        Spec(f"{name}_{simulation}", f"{title} ({simulation})", lambda d: check(d, True)),
    )


CHECKS: tuple[Spec | BackendSpec, ...] = (
    Spec("settings", "settings", check_settings),
    Spec("redis", "redis", check_redis),
    Spec("redis_durability", "redis durability", check_durability),
    Spec("redis_replication", "redis replicas", check_replication),
    Spec("ledger_schema", "ledger schema", check_schema),
    *_each_environment("pax8", "pax8 credentials", check_credentials),
    *_each_environment("webhook", "webhook", check_webhook),
    *_each_environment("receiver", "receiver", check_receiver),
    Spec("queues", "queues", check_queues),
    Spec("beat", "beat", check_beat),
    Spec("clocks", "clocks", check_clocks),
    BackendSpec("vendor", "vendor", check_vendor),
    Spec("orders", "orders", check_orders),
)
"""Every check, in the order of the table."""

NAMES: tuple[str, ...] = tuple(spec.name for spec in CHECKS)


def run_check(doctor: Doctor, spec: Spec) -> Finding:
    """One check; what it raises becomes its ``fail``."""
    try:
        return spec.run(doctor)
    except REDIS_UNAVAILABLE as exc:
        return fail(f"not checked: Redis does not answer ({exc})", "see the redis row")
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        log.exception("doctor: the %s check failed", spec.name)
        return fail(
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "see the log; report it if it persists",
        )


def run_checks(doctor: Doctor) -> Report:
    """Every check of :data:`CHECKS`, in order."""
    scrubber = Scrubber.from_settings(doctor.settings)
    rows = []
    for each in CHECKS:
        runs = each.specs(doctor) if isinstance(each, BackendSpec) else [(each, "")]
        for spec, backend in runs:
            finding = run_check(doctor, spec)
            rows.append(
                Check(
                    spec.name,
                    spec.title,
                    finding.status,
                    scrubber.text(finding.detail),
                    scrubber.text(finding.fix),
                    backend,
                )
            )
    return Report(tuple(rows), doctor.now(), __version__)


def settings_report(error: ConfigError, at: float) -> Report:
    """The report when the settings themselves do not load: nothing else can be checked."""
    row = Check(
        "settings",
        "settings",
        Status.FAIL,
        f"{error}: no process starts with these settings",
        f"fix {error.variable} (every process reads the same environment or .env file)",
    )
    return Report((row,), at, __version__)


def scheduled(doctor: Doctor) -> Report:
    """The run beat schedules: every check, the report stored for the console and the
    metrics (kept in memory only when Redis does not answer: its row says so)."""
    report = run_checks(doctor)
    try:
        store.save(doctor.services.ledger, report)
    except REDIS_UNAVAILABLE as exc:
        log.warning("doctor: report not stored, Redis unavailable: %s", exc)
    failing = [c.name for c in report.checks if c.status is Status.FAIL]
    log.info("doctor: %s%s", report.status.value, f" ({', '.join(failing)})" if failing else "")
    return report
