"""``fulfill doctor``: one table of checks of every wire of a deployment.

Thin over :mod:`fulfillment.doctor`: build the collaborators from this environment's
settings (the deployment's), run every check, print one row each (``ok``, ``warn`` or
``fail``, what was seen, the fix in one line) or JSON, exit 1 when any check fails. Every
value from outside (a worker's name, Pax8's or a vendor's text) passes the table's escaping.
"""

from __future__ import annotations

import time

import click

from cli.context import runtime
from cli.errors import FAILED
from cli.output import echo_json, safe, table
from config.settings import ConfigError
from fulfillment.doctor.context import INSPECT_TIMEOUT, Doctor
from fulfillment.doctor.result import Report
from fulfillment.doctor.run import run_checks, settings_report
from worker.factory import create_celery
from worker.inspection import CeleryWorkers


def diagnose(inspect_timeout: float = INSPECT_TIMEOUT) -> Report:
    """Every check against the deployment these settings describe."""
    rt = runtime()
    try:
        settings = rt.settings
    except ConfigError as exc:
        return settings_report(exc, time.time())
    celery = create_celery(settings)
    doctor = Doctor(settings, rt.services, CeleryWorkers(celery), inspect_timeout=inspect_timeout)
    try:
        return run_checks(doctor)
    finally:
        doctor.close()
        celery.close()


def render(report: Report) -> str:
    """The table (a ``fix:`` line under every row that is not ok) and a summary line."""
    rows = [(c.title, c.status.value, c.detail) for c in report.checks]
    header, *lines = table(("check", "status", "detail"), rows).splitlines()
    indent = " " * header.index("detail")
    out = [header]
    for check, line in zip(report.checks, lines, strict=True):
        out.append(line)
        if check.fix:
            out.append(f"{indent}fix: {safe(check.fix)}")
    counts = report.counts
    out.append(
        f"\n{len(report.checks)} checks: {counts['ok']} ok, {counts['warn']} warn, "
        f"{counts['fail']} fail."
    )
    return "\n".join(out)


@click.command("doctor", short_help="Check every wire of this deployment (one table).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
@click.option(
    "--inspect-timeout",
    type=click.FloatRange(0.1, 30),
    default=INSPECT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the workers' replies.",
)
def doctor(as_json: bool, inspect_timeout: float) -> None:
    """Check every wire of this deployment, with the settings of this environment (run it
    where the processes' settings are): settings; Redis reachable, with AOF, its replicas
    and Sentinel quorum; both Pax8 credential sets; each environment's newest webhook
    configuration pointing at PUBLIC_URL/webhooks/pax8 with the header and a credential the
    receiver accepts; the receiver answering there (an empty probe: 400, nothing recorded);
    a consumer for every queue, their depth and the oldest waiting order; beat alive (the
    last reconciliation younger than two intervals); the workers' clocks against Redis's;
    the vendor endpoint refusing a call without its token; dead and failed orders.

    One row per check: ok, warn or fail and what was seen, with the fix on the line below
    when it is not ok. Exit 1 if any check
    fails (warnings do not), 0 otherwise. Beat runs the same checks every
    DOCTOR_INTERVAL_SECONDS for the metrics and the console.

    \b
    Examples:
      fulfill doctor
      fulfill doctor --json | jq '.checks[] | select(.status != "ok")'
    """
    report = diagnose(inspect_timeout)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(render(report))
    if not report.ok:
        raise click.exceptions.Exit(FAILED)
