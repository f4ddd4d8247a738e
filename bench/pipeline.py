"""``python -m bench.pipeline``: orders/s and latency from webhook to result stored at the sandbox.

One Redis, one sandbox, and on them:

* the project: the receiver (Procfile ``web``, 2 sync workers) and **one** worker from
  the Procfile ``worker`` line with ``WORKER_CONCURRENCY=2`` (prefork, 2 pool processes),
  the ``example`` vendor adapter (its state in the same Redis);
* the project with the ``null`` vendor (``bench.null_vendor``: answers at once, no I/O),
  the same worker otherwise: the worker's own cost, apart from any adapter's (run last,
  the example worker stopped, after 20 orders of warm-up; compared with the same bare
  rounds);
* the bare baseline: ``bench.bare_celery`` from the same ``worker`` line (prefork c=2),
  one task that makes one httpx POST of a result; the tasks are published straight from
  this process with ``send_task`` (no receiver in front);
* the sandbox's own ceiling: result POSTs from the load generator (keep-alive, 4 in
  flight), one per acknowledged attempt, nothing else in the way.

Each phase starts from a reset sandbox holding fresh NetNew requests with an
Acknowledged attempt (``/sandbox/bulk``); each webhook carries its own company domain.
Throughput is N / (last result stored - first webhook sent). Latency is measured at half
the project's throughput, open loop: from when a webhook (or a bare task) was due to the
``createdDate`` of its result at the sandbox, leaving out the first second (connections
being opened). Lost and duplicated results are counted.

Target (the issue): the project ≥ 0.4 × the bare task's orders/s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from bench.bare_broker import POST_RESULT, QUEUE, bare_celery_app
from bench.common import (
    Bench,
    Comparison,
    Tally,
    acknowledged_requests,
    best,
    collect,
    cpu_seconds,
    new_stack,
    percentile,
    result_items,
    run_load,
    start_bare_worker,
    start_web,
    webhook_items,
)
from tests.support.stack import Stack

# Seconds of open-loop load whose latencies are not counted (connections being opened).
WARMUP = 1.0


def _check(bench: Bench, label: str, found: Tally) -> None:
    bench.log(
        f"{label}: {found.distinct}/{found.expected} requests have a result, lost {found.lost}, "
        f"duplicates {found.duplicates}, statuses {found.statuses}"
    )
    bench.details[f"{label}: lost / duplicates"] = f"{found.lost} / {found.duplicates}"
    if not found.clean():
        raise SystemExit(f"{label}: {found.lost} lost, {found.duplicates} duplicated results")


class CpuMeter:
    """CPU seconds of named process trees between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        """Read the counters."""
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self, orders: int) -> dict[str, float]:
        """CPU ms per order of each tree since :meth:`start`."""
        self.used = {
            name: (cpu_seconds(pid) - self.before[name]) * 1000 / orders
            for name, pid in self.pids.items()
        }
        return self.used


Driver = Callable[[list[dict[str, Any]]], tuple[dict[str, float], float]]


def _measured_run(
    bench: Bench,
    stack: Stack,
    count: int,
    label: str,
    meter: CpuMeter | None,
    drive: Driver,
    warmup: float = WARMUP,
) -> tuple[float, list[float]]:
    """Send ``count`` fresh orders with ``drive`` and wait for every result.

    ``drive`` gets the acknowledged requests and returns when each was due and when the
    first went out; the result is (orders/s, latencies in ms).
    """
    stack.sandbox.reset()
    requests = acknowledged_requests(stack, count)
    if meter is not None:
        meter.start()
    due, first = drive(requests)
    found = collect(stack, [r["id"] for r in requests], timeout=max(120.0, count / 10))
    if meter is not None:
        meter.stop(count)
    _check(bench, label, found)
    return count / (max(found.created.values()) - first), _latencies(found, due, warmup)


def project_run(
    bench: Bench,
    stack: Stack,
    port: int,
    count: int,
    rate: float | None,
    label: str,
    meter: CpuMeter | None = None,
    warmup: float = WARMUP,
) -> tuple[float, list[float]]:
    """``count`` webhooks to the receiver; (orders/s, latencies in ms after ``warmup``)."""

    def drive(requests: list[dict[str, Any]]) -> tuple[dict[str, float], float]:
        load = run_load(
            bench.tmp / "load", port, items=webhook_items(requests), rate=rate, concurrency=32
        )
        if load.ok() != count:
            raise SystemExit(f"{label}: only {load.ok()} of {count} webhooks acknowledged")
        return {row[0]: row[1] for row in load.rows}, min(row[2] for row in load.rows)

    return _measured_run(bench, stack, count, label, meter, drive, warmup)


def bare_run(
    bench: Bench,
    stack: Stack,
    count: int,
    rate: float | None,
    label: str,
    meter: CpuMeter | None = None,
    warmup: float = WARMUP,
) -> tuple[float, list[float]]:
    """``count`` bare tasks published from here; (orders/s, latencies in ms after
    ``warmup``)."""

    def drive(requests: list[dict[str, Any]]) -> tuple[dict[str, float], float]:
        app = bare_celery_app("bench-driver")
        app.conf.broker_url = stack.redis_server.url
        due: dict[str, float] = {}
        try:
            with app.producer_or_acquire() as producer:
                start = time.time() + 0.2
                for index, created in enumerate(requests):
                    moment = start + index / rate if rate else time.time()
                    delay = moment - time.time()
                    if delay > 0:
                        time.sleep(delay)
                    due[created["id"]] = moment
                    app.send_task(
                        POST_RESULT,
                        args=[created["id"], created["attemptId"]],
                        queue=QUEUE,
                        producer=producer,
                    )
        finally:
            app.close()
        return due, min(due.values())

    return _measured_run(bench, stack, count, label, meter, drive, warmup)


def _latencies(found: Tally, due: dict[str, float], warmup: float = WARMUP) -> list[float]:
    """Due → result stored, in ms, leaving out the first ``warmup`` seconds of the run."""
    start = min(due.values()) + warmup
    return [(found.created[i] - at) * 1000 for i, at in due.items() if at >= start]


def _cpu_text(used: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in used.items())


def sandbox_ceiling(bench: Bench, stack: Stack, count: int) -> float:
    """Result POSTs/s the sandbox stores when nothing else is in the way."""
    stack.sandbox.reset()
    requests = acknowledged_requests(stack, count)
    port = int(stack.sandbox.url.rsplit(":", 1)[1])
    load = run_load(
        bench.tmp / "load",
        port,
        items=result_items(requests),
        concurrency=4,
        headers={"Authorization": f"Bearer {stack.sandbox.token()}"},
    )
    if load.ok() != count:
        raise SystemExit(f"sandbox ceiling: {load.statuses()}")
    return count / load.seconds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""
    with Bench("pipeline", "orders/s and latency, webhook to result at the sandbox", argv) as bench:
        count = 200 if bench.quick else 2000
        latency_seconds = 3.0 if bench.quick else 10.0
        stack = new_stack(bench)
        try:
            web = start_web(stack, "receiver")
            worker = stack.start_worker(concurrency=2)
            bare_worker = start_bare_worker(stack, concurrency=2)
            assert stack.redis_server.process is not None
            shared = {
                "redis-server": stack.redis_server.process.pid,
                "sandbox": stack.sandbox.proc.pid,
            }
            project_meter = CpuMeter({"receiver": web.proc.pid, "worker": worker.pid, **shared})
            bare_meter = CpuMeter({"worker": bare_worker.pid, **shared})
            cpu: dict[str, list[dict[str, float]]] = {"project": [], "bare": []}
            runs: dict[str, list[float]] = {"project": [], "bare": [], "sandbox": []}
            for round_number in range(1, bench.args.rounds + 1):
                ceiling = sandbox_ceiling(bench, stack, count)
                runs["sandbox"].append(ceiling)
                bench.log(f"round {round_number} sandbox ceiling: {ceiling:,.0f} results/s")
                rate, _ = bare_run(
                    bench, stack, count, None, f"round {round_number} bare", bare_meter
                )
                runs["bare"].append(rate)
                cpu["bare"].append(bare_meter.used)
                bench.log(
                    f"round {round_number} bare task: {rate:,.0f} orders/s; CPU ms per order "
                    + _cpu_text(bare_meter.used)
                )
                rate, _ = project_run(
                    bench,
                    stack,
                    web.port,
                    count,
                    None,
                    f"round {round_number} project",
                    project_meter,
                )
                runs["project"].append(rate)
                cpu["project"].append(project_meter.used)
                bench.log(
                    f"round {round_number} project: {rate:,.0f} orders/s; CPU ms per order "
                    + _cpu_text(project_meter.used)
                )
            throughput = {name: best(values) for name, values in runs.items()}
            offered = throughput["project"] / 2
            latency_count = max(20, int(offered * (latency_seconds + WARMUP)))
            p50: dict[str, list[float]] = {"project": [], "bare": []}
            p99: dict[str, list[float]] = {"project": [], "bare": []}
            for round_number in range(1, bench.args.rounds + 1):
                label = f"round {round_number} latency"
                _, bare_ms = bare_run(bench, stack, latency_count, offered, f"{label} bare")
                _, project_ms = project_run(
                    bench, stack, web.port, latency_count, offered, f"{label} project"
                )
                for name, values in (("bare", bare_ms), ("project", project_ms)):
                    p50[name].append(percentile(values, 50))
                    p99[name].append(percentile(values, 99))
                    bench.log(
                        f"{label} {name} at {offered:,.0f}/s: p50 {p50[name][-1]:.1f} ms, "
                        f"p99 {p99[name][-1]:.1f} ms"
                    )
            # The null vendor: the same worker line, the adapter that does nothing.
            stack.procs.remove(worker)
            worker.stop()
            null_worker = stack.start_worker(
                "worker-null", concurrency=2, VENDOR_ADAPTER="bench.null_vendor:NullVendor"
            )
            null_meter = CpuMeter({"receiver": web.proc.pid, "worker": null_worker.pid, **shared})
            runs["null"], cpu["null"] = [], []
            # Warm: each pool process builds its services (Pax8 token, connections) first.
            project_run(bench, stack, web.port, 20, None, "null vendor warm-up")
            for round_number in range(1, bench.args.rounds + 1):
                rate, _ = project_run(
                    bench, stack, web.port, count, None, f"round {round_number} null", null_meter
                )
                runs["null"].append(rate)
                cpu["null"].append(null_meter.used)
                bench.log(
                    f"round {round_number} project, null vendor: {rate:,.0f} orders/s; CPU ms "
                    "per order " + _cpu_text(null_meter.used)
                )
            stack.procs.remove(null_worker)
            null_worker.stop()
            throughput["null"] = best(runs["null"])
            bench.details["ledger after the run"] = stack.ledger.counts()
        finally:
            stack.stop()
        ratio = throughput["project"] / throughput["bare"]
        bench.add(
            Comparison(
                "orders/s, webhook → result at the sandbox",
                "/s",
                throughput["project"],
                throughput["bare"],
                "Celery task, one httpx POST (prefork c=2)",
                target="≥ 0.4 × bare",
                met=ratio >= 0.4,
            )
        )
        bench.add(
            Comparison(
                "orders/s, null vendor (the worker's own cost)",
                "/s",
                throughput["null"],
                throughput["bare"],
                "Celery task, one httpx POST (prefork c=2)",
            )
        )
        bench.add(
            Comparison(
                "orders/s vs the sandbox's own ceiling",
                "/s",
                throughput["project"],
                throughput["sandbox"],
                "result POSTs straight to the sandbox",
            )
        )
        for label, percentiles in (("p50", p50), ("p99", p99)):
            bench.add(
                Comparison(
                    f"{label} webhook → result at {offered:,.0f}/s (half peak)",
                    "ms",
                    best(percentiles["project"], higher_is_better=False),
                    best(percentiles["bare"], higher_is_better=False),
                    "bare task, publish → result",
                    higher_is_better=False,
                )
            )
        project_cpu = min(used["worker"] for used in cpu["project"])
        bare_cpu = min(used["worker"] for used in cpu["bare"])
        bench.add(
            Comparison(
                "worker CPU per order (celery main + pool)",
                "ms",
                project_cpu,
                bare_cpu,
                "Celery task, one httpx POST (prefork c=2)",
                higher_is_better=False,
                note="less noisy than throughput on a shared machine",
            )
        )
        null_cpu = min(used["worker"] for used in cpu["null"])
        bench.add(
            Comparison(
                "worker CPU per order, null vendor (celery main + pool)",
                "ms",
                null_cpu,
                bare_cpu,
                "Celery task, one httpx POST (prefork c=2)",
                higher_is_better=False,
                target="≤ 1.4 × bare",
                met=null_cpu <= 1.4 * bare_cpu,
            )
        )
        bench.details["CPU ms per order, by process tree"] = {
            name: [{k: round(v, 2) for k, v in used.items()} for used in values]
            for name, values in cpu.items()
        }
        bench.details["orders/s rounds"] = {k: [round(v) for v in vs] for k, vs in runs.items()}
        bench.details["orders per throughput run"] = count
        bench.details["project processes"] = (
            "receiver: gunicorn, 2 sync workers; worker: one celery worker, prefork c=2"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
