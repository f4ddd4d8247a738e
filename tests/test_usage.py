"""Usage reporting with real processes: receiver, workers, beats, the sandbox as Pax8.

The usage clock is a file that every process and the sandbox read
(``USAGE_CLOCK_FILE``, ``--clock-file``): the test writes each day's time into it and beat's
next tick runs that day, so a month passes in about a minute.

* a compressed month over 200 subscriptions in both environments, with two beats, 429s
  and 500s from Pax8, a worker's process killed mid-run and a subscription deprovisioned
  mid-month, ends with Pax8 holding exactly the source's closing totals of every
  subscription (the counts are printed);
* the shared limiter keeps every worker's posts under Pax8's rate limit;
* the cutoff alert: quiet before the deadline, the metric and one Sentry event past it,
  quiet again once the closing totals are in;
* ``fulfill usage post`` posts by hand and refuses a period past its cutoff.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fulfillment.ledger.refs import Scope
from fulfillment.usage.models import RunState
from fulfillment.usage.store import UsageStore
from tests.support.procs import free_port, wait_until
from tests.support.sentry_server import SentryServer
from tests.support.stack import Stack, unique_domain
from vendors.example import ExampleAdapter
from vendors.usage import UsageQuery

MARCH, APRIL = "2031-03", "2031-04"
ENVIRONMENTS = {Scope.PAX8: "production", Scope.PAX8_SIMULATION: "simulation"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class UsageStack(Stack):
    """A stack whose processes and sandbox share a usage clock file."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None, **sandbox: Any):
        self.clock_file = tmp_path / "usage-clock"
        self.clock_file.write_text("2031-03-01T00:10:00Z")
        options = {"clock_file": str(self.clock_file), **sandbox}
        base = {
            "USAGE_REPORTING": "true",
            "USAGE_CLOCK_FILE": str(self.clock_file),
            "USAGE_CHECK_INTERVAL_SECONDS": "0.3",
            "USAGE_RUN_AT": "02:00",
            "USAGE_CHUNK_SIZE": "10",
            **(env or {}),
        }
        super().__init__(tmp_path, base, sandbox_options=options)
        self.usage = UsageStore(self.redis())

    def set_now(self, text: str) -> None:
        # Written whole at once (rename): a reader never sees half a time.
        spare = self.clock_file.with_suffix(".new")
        spare.write_text(text)
        os.replace(spare, self.clock_file)

    def subscribe(self, count: int, environment: str, quantity: int = 2) -> list[str]:
        """``count`` NetNew orders delivered by the sandbox; their subscription ids."""
        subs = []
        for _ in range(count):
            sub = str(uuid.uuid4())
            request = {
                "subscriptionId": sub,
                "companyDomain": unique_domain(),
                "quantity": quantity,
            }
            self.sandbox.orders(environment=environment, order={"provisionRequest": request})
            subs.append(sub)
        return subs

    def wait_registered(self, count: int, timeout: float = 120.0) -> None:
        wait_until(
            lambda: len(self.usage.subscriptions()) >= count,
            timeout,
            0.2,
            message=lambda: (
                f"{len(self.usage.subscriptions())} of {count} noted\n{self.describe()}"
            ),
        )

    def run_day(self, day: str, timeout: float = 120.0) -> None:
        """Move the clock to ``day`` 03:00 and wait until beat's run of it is done."""
        self.set_now(f"{day}T03:00:00Z")

        def done() -> bool:
            run = self.usage.run(day)
            return run is not None and run.state is RunState.DONE

        wait_until(
            done, timeout, 0.05, message=lambda: f"{day}: {self.usage.run(day)}\n{self.describe()}"
        )

    def mid_run(self, day: str, done: int) -> bool:
        """Whether ``day``'s run has finished at least ``done`` jobs and has more to do."""
        run = self.usage.run(day)
        return run is not None and done <= run.jobs - run.pending < run.jobs

    def billed(self, scope: Scope, period: str) -> dict[str, Any]:
        answer = self.sandbox.control.get(
            "/usage", params={"environment": ENVIRONMENTS[scope], "billingPeriod": period}
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["subscriptions"])

    def sandbox_stats(self) -> dict[str, int]:
        return dict(self.sandbox.control.get("/usage").json()["stats"])


def totals_billed(summaries: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (key, x["productId"], x["unitOfMeasurement"], x["quantity"])
        for key, summary in summaries.items()
        for x in summary["lines"]
    )


def source_totals(
    stack: UsageStack, scope: Scope, sub: str, period: str, as_of: datetime
) -> list[tuple[Any, ...]]:
    record = stack.usage.subscription(scope, sub)
    assert record is not None
    query = UsageQuery(
        subscription_id=sub,
        billing_period=period,
        as_of=as_of,
        is_simulation=scope is Scope.PAX8_SIMULATION,
        ended_at=record.ended_at,
    )
    lines = ExampleAdapter(None, client=stack.redis()).usage(query)
    return sorted((x.summary_key, x.product_id, x.unit_of_measurement, x.quantity) for x in lines)


def days(first: str, last: str) -> Iterator[str]:
    day = at(first)
    while day <= at(last):
        yield day.date().isoformat()
        day += timedelta(days=1)


@pytest.mark.slow
def test_a_compressed_month_leaves_pax8_holding_exactly_the_sources_totals(tmp_path: Path) -> None:
    started = time.monotonic()
    stack = UsageStack(
        tmp_path,
        {"USAGE_POSTS_PER_MINUTE": "600000", "USAGE_MAX_RETRIES": "10"},
        usage_rate_limit=100_000,
        usage_rate_window=1.0,
    )
    try:
        stack.start_receiver()
        first = stack.start_worker("worker-a", concurrency=2)
        stack.start_worker("worker-b", concurrency=2)
        production = stack.subscribe(146, "production") + stack.subscribe(4, "production", 60)
        simulation = stack.subscribe(50, "simulation")
        stack.wait_registered(200)
        provisioned = time.monotonic()
        subs = [(Scope.PAX8, s) for s in production] + [
            (Scope.PAX8_SIMULATION, s) for s in simulation
        ]
        # Two beats tick every 0.3 s: each day's run must still be planned once.
        stack.start_beat("beat-a")
        stack.start_beat("beat-b")
        # Pax8 misbehaves all month: 429s (now and then with Retry-After: 1) and 500s after
        # it stored the post.
        for rule in (
            {"action": "error", "status": 429, "retry_after": 1, "rate": 0.002},
            {"action": "error", "status": 429, "rate": 0.01},
            {"action": "error_after", "status": 500, "rate": 0.01},
        ):
            stack.sandbox.add_fault(method="POST", path="/v2/usage/lines", **rule)
        gone = production[7]
        killed = 0
        for day in days("2031-03-01", "2031-04-02"):
            if day == "2031-03-15":
                # Deprovisioned before the 15th's run: March is still owed, April is not.
                stack.set_now("2031-03-15T00:30:00Z")
                domain = unique_domain()
                request = {"type": "Deprovision", "subscriptionId": gone, "companyDomain": domain}
                stack.sandbox.orders(order={"provisionRequest": request})
                wait_until(lambda: stack.usage.subscription(Scope.PAX8, gone).ended_at, 30)  # type: ignore[union-attr]
            if day == "2031-03-10":
                stack.set_now(f"{day}T03:00:00Z")
                wait_until(lambda: stack.mid_run("2031-03-10", 20), 60)
                killed = stack.kill_pool_child(first)
            stack.run_day(day)
        assert killed
        month = time.monotonic() - provisioned
        # Every day's run was planned once, with one job per subscription and period.
        runs = {day: stack.usage.run(day) for day in days("2031-03-01", "2031-04-02")}
        for day, run in runs.items():
            assert run is not None, day
            after_gone = day >= "2031-04-01"
            expected = 200 * (2 if day in ("2031-04-01", "2031-04-02") else 1) - (
                1 if after_gone else 0
            )
            assert run.jobs == expected, (day, run)
            assert run.counts["posted"] == expected, (day, run)
        # Pax8 holds exactly the source's closing totals of March for every subscription...
        march = {scope: stack.billed(scope, MARCH) for scope in ENVIRONMENTS}
        mismatched = [
            (scope, sub)
            for scope, sub in subs
            if totals_billed(march[scope].get(sub, {}).get(MARCH, {}))
            != source_totals(stack, scope, sub, MARCH, at("2031-04-30T00:00:00"))
        ]
        assert mismatched == []
        # ... and April's totals as of the 2nd; nothing for April of the one that ended.
        april = {scope: stack.billed(scope, APRIL) for scope in ENVIRONMENTS}
        assert gone not in april[Scope.PAX8]
        assert gone in march[Scope.PAX8]
        for scope, sub in subs:
            if sub == gone:
                continue
            assert totals_billed(april[scope][sub][APRIL]) == source_totals(
                stack, scope, sub, APRIL, at("2031-04-02T03:00:00")
            )
        # Every post Pax8 stored is one it answered 2xx, or one the 500 fault hit after, or
        # the one the killed process may have had on its way (its answer died with it).
        stats, pax8 = stack.usage.stats(), stack.sandbox_stats()
        faults = {429: 0, 500: 0}
        for rule in stack.sandbox.faults():
            faults[rule["status"]] += rule["fired"]
        assert 0 <= pax8["posts"] - (stats["posts_ok"] + faults[500]) <= 1
        assert stats["posts_rate_limited"] == faults[429] + pax8.get("rate_limited", 0)
        assert stats["posts_failed"] == faults[500]
        print(
            f"\ncompressed month: {len(subs)} subscriptions ({len(production)} production, "
            f"{len(simulation)} simulation), {len(runs)} daily runs, "
            f"{stats['posts_ok']} posts accepted, {stats['lines_ok']} lines, "
            f"{stats['posts_rate_limited']} 429s absorbed, {stats['posts_failed']} 500s absorbed, "
            f"1 worker process killed mid-run, 1 subscription deprovisioned mid-month; "
            f"final totals equal the source's for {len(subs) - len(mismatched)} of {len(subs)} "
            f"subscriptions ({time.monotonic() - started:.0f} s: provisioning "
            f"{provisioned - started:.0f} s, the month {month:.0f} s)"
        )
    finally:
        stack.stop()


def test_the_shared_limiter_keeps_every_workers_posts_under_pax8s_rate(tmp_path: Path) -> None:
    # 600 a minute is 10 a second with bursts of 10: at most 20 leave in any second; the
    # sandbox allows 25 (half a second of margin for a post delayed on its way, as 915 of
    # Pax8's 1,000 a minute leave 85); four pool processes posting unpaced send hundreds.
    stack = UsageStack(
        tmp_path,
        {"USAGE_POSTS_PER_MINUTE": "600", "USAGE_CHUNK_SIZE": "2"},
        usage_rate_limit=25,
        usage_rate_window=1.0,
    )
    try:
        stack.start_receiver()
        stack.start_worker("worker-a", concurrency=2)
        stack.start_worker("worker-b", concurrency=2)
        stack.subscribe(50, "production")
        stack.wait_registered(50)
        stack.start_beat()
        started = time.monotonic()
        stack.run_day("2031-03-05")
        seconds = time.monotonic() - started
        stats = stack.usage.stats()
        assert stats["posts_ok"] == 50
        assert stats.get("posts_rate_limited", 0) == 0, stats
        assert stack.sandbox_stats().get("rate_limited", 0) == 0
        assert seconds >= 3.5  # 40 posts past the first burst of 10, at 10 a second
    finally:
        stack.stop()


def scrape(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def overdue(text: str, environment: str = "production") -> float:
    wanted = f'fulfillment_usage_overdue_subscriptions{{environment="{environment}"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    raise AssertionError(f"no {wanted} in the scrape")


def test_the_cutoff_alert_fires_past_the_deadline_and_not_before(tmp_path: Path) -> None:
    with SentryServer() as sentry:
        beat_port = free_port()
        stack = UsageStack(
            tmp_path,
            {
                "SENTRY_DSN": sentry.dsn,
                "USAGE_MAX_RETRIES": "1",
                "RETRY_BACKOFF_MAX_SECONDS": "0.5",
            },
        )
        try:
            stack.start_receiver()
            stack.start_worker()
            subs = stack.subscribe(3, "production")
            stack.wait_registered(3)
            stack.start_beat(BEAT_METRICS_PORT=str(beat_port))
            stack.run_day("2031-03-31")
            # Pax8 fails every post of the 1st: the closing totals of March do not get in.
            stack.sandbox.add_fault(
                method="POST", path="/v2/usage/lines", action="error", status=503
            )
            stack.run_day("2031-04-01")
            assert stack.usage.run("2031-04-01").counts["failed"] == 6  # type: ignore[union-attr]
            # Before noon on the 1st: owed, not overdue; no alert.
            stack.set_now("2031-04-01T11:59:00Z")
            wait_until(lambda: stack.usage.overdue()[1] > time.time() - 0.5, 10)
            assert overdue(scrape(beat_port)) == 0
            assert not [e for e in sentry.events() if "usage_period" in str(e.get("tags"))]
            # Past the deadline: the metric, and one Sentry event naming the period.
            stack.set_now("2031-04-01T12:01:00Z")
            wait_until(lambda: overdue(scrape(beat_port)) == 3, 10)
            event = wait_until(
                lambda: next(
                    (e for e in sentry.events() if "usage_period" in str(e.get("tags"))), None
                ),
                20,
            )
            assert (
                "2031-03" in event["message"]["formatted"]
                if isinstance(event.get("message"), dict)
                else "2031-03" in str(event)
            )
            assert sorted(event["contexts"]["usage"]["overdue"]) == sorted(subs)
            time.sleep(1.0)  # more ticks: still one event for the period
            assert len([e for e in sentry.events() if "usage_period" in str(e.get("tags"))]) == 1
            result = subprocess.run(
                [str(Path(sys.executable).with_name("fulfill")), "usage", "status"],
                env={**os.environ, **stack.env},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 1, result.stdout + result.stderr
            assert "3 subscription(s) overdue" in result.stderr
            assert result.stdout.count("closing totals") == 3
            # Pax8 takes posts again; the 2nd's run posts the closing totals: quiet.
            stack.sandbox.clear_faults()
            stack.run_day("2031-04-02")
            wait_until(lambda: overdue(scrape(beat_port)) == 0, 10)
        finally:
            stack.stop()


def test_fulfill_usage_post_posts_by_hand_and_refuses_a_closed_period(tmp_path: Path) -> None:
    stack = UsageStack(tmp_path)
    try:
        stack.start_receiver()
        stack.start_worker()
        (sub,) = stack.subscribe(1, "production")
        stack.wait_registered(1)
        fulfill = [str(Path(sys.executable).with_name("fulfill")), "usage"]
        env = {**os.environ, **stack.env}
        stack.set_now("2031-04-02T20:00:00Z")
        posted = subprocess.run([*fulfill, "post", sub, "--period", MARCH], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert posted.returncode == 0, posted.stdout + posted.stderr
        assert "posted (1 posts, 2 lines)" in posted.stdout
        expected = source_totals(stack, Scope.PAX8, sub, MARCH, at("2031-04-30T00:00:00"))
        assert totals_billed(stack.billed(Scope.PAX8, MARCH)[sub][MARCH]) == expected
        history = subprocess.run([*fulfill, "status", "--subscription", sub, "--period", MARCH],
                                 env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert history.returncode == 0 and "-> 200" in history.stdout, history.stdout
        before = stack.sandbox_stats()["posts"]
        stack.set_now("2031-04-03T00:00:00Z")
        refused = subprocess.run([*fulfill, "post", sub, "--period", MARCH], env=env,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert refused.returncode == 1
        assert "closed at 2031-04-03T00:00:00Z" in refused.stderr
        assert stack.sandbox_stats()["posts"] == before
    finally:
        stack.stop()
