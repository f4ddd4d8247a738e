"""``python -m bench.scaling``: orders/s with 1, 2 and 4 worker processes, the CPU they used,
and the Redis commands one order costs (the capacity model's inputs).

One Redis primary with a replica attached (the high-availability layout: the primary also
streams every write to it), one sandbox, the receiver (Procfile ``web``) and, for each N in
1, 2, 4, N worker processes: N celery workers from the Procfile ``worker`` line with
``WORKER_CONCURRENCY=1`` (each its own consumer, as N hosts would run them). The vendor is
``bench.null_vendor`` (answers at once, no I/O), so what is measured is the worker's own
work per order: the ledger's transitions, the broker and the result POST to Pax8. The bare
baseline is ``bench.bare_celery`` (one task, one httpx POST of the result) with the same N.

Per run: orders/s (N orders / (last result stored - first sent)), CPU ms per order of the
worker trees and of redis-server (psutil), and Redis ``INFO commandstats`` read before and
after: commands per order, by command. One more project run with N=2 and
``REDIS_WAIT_REPLICAS=1`` shows what confirming the claim, the outcome and the posting
mark on a replica costs the workers (the receiver's side is ``bench.wait``).

From these: one Redis core carries at most 1000 / (redis-server CPU ms per order)
orders/s; the capacity model (``docs/scaling.md``) quotes the figures.

Last, what workers cost when there is nothing to do: two idle worker processes with the
default broker and liveness settings (heartbeats, the sweep of gone workers, kombu's
visibility scan and its ``BRPOP`` polling), once they have run long enough to judge others
(``WORKER_LOST_AFTER_SECONDS``), counted by ``INFO commandstats`` over a window (30 s quick,
120 s otherwise), per worker and second, beside two idle bare workers.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import redis

from bench.common import (
    Bench,
    Comparison,
    best,
    cpu_seconds,
    new_stack,
    start_bare_worker,
    start_web,
)
from bench.pipeline import bare_run, project_run
from cli.redis_server import RedisServer
from tests.support.procs import Proc, wait_until
from tests.support.redis_monitor import Monitor
from tests.support.stack import Stack

SIZES = (1, 2, 4)


def command_counts(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started (``INFO commandstats``)."""
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


class Meter:
    """CPU ms and Redis commands per order between :meth:`start` and :meth:`stop` (the
    interface ``bench.pipeline``'s runs drive)."""

    def __init__(self, client: redis.Redis, pids: dict[str, int]) -> None:
        self.client = client
        self.pids = pids
        self.used: dict[str, float] = {}
        self.commands: dict[str, int] = {}

    def start(self) -> None:
        """Read the counters."""
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._commands = command_counts(self.client)
        self._memory = int(self.client.info("memory")["used_memory"])

    def stop(self, orders: int) -> dict[str, float]:
        """CPU ms per order of each tree since :meth:`start` (commands in ``commands``)."""
        self.used = {
            name: (cpu_seconds(pid) - self._cpu[name]) * 1000 / orders
            for name, pid in self.pids.items()
        }
        self.bytes_per_order = (
            int(self.client.info("memory")["used_memory"]) - self._memory
        ) / orders
        after = command_counts(self.client)
        self.commands = {
            name: count - self._commands.get(name, 0)
            for name, count in after.items()
            if count > self._commands.get(name, 0)
        }
        return self.used


def start_workers(stack: Stack, count: int, bare: bool, **env: str) -> list[Proc]:
    """``count`` single-process workers (the project's or the bare one)."""
    if bare:
        return [start_bare_worker(stack, concurrency=1) for _ in range(count)]
    return [stack.start_worker(f"worker-{index}", concurrency=1, **env) for index in range(count)]


def stop_workers(stack: Stack, workers: list[Proc]) -> None:
    for proc in workers:
        proc.stop()
        stack.procs.remove(proc)


def measure(
    bench: Bench,
    stack: Stack,
    client: redis.Redis,
    port: int,
    size: int,
    count: int,
    bare: bool,
    label: str,
    receiver: int = 0,
    **env: str,
) -> dict[str, Any]:
    """One run with ``size`` worker processes: orders/s, CPU and commands per order."""
    workers = start_workers(stack, size, bare, **env)
    try:
        assert stack.redis_server.process is not None
        pids = {f"worker-{i}": proc.pid for i, proc in enumerate(workers)}
        pids["redis-server"] = stack.redis_server.process.pid
        pids["receiver"] = receiver
        pids["sandbox"] = stack.sandbox.proc.pid
        meter = Meter(client, pids)
        # Warm up first: each pool process builds its services (Pax8 token, adapters,
        # connections) on its first order; that start-up is not a cost per order.
        warm = 20 * size
        if bare:
            bare_run(bench, stack, warm, None, f"{label} warm-up")
            rate, _ = bare_run(bench, stack, count, None, label, meter)  # type: ignore[arg-type]
        else:
            project_run(bench, stack, port, warm, None, f"{label} warm-up")
            rate, _ = project_run(bench, stack, port, count, None, label, meter)  # type: ignore[arg-type]
    finally:
        stop_workers(stack, workers)
    workers_cpu = sum(v for k, v in meter.used.items() if k.startswith("worker-"))
    commands = sum(meter.commands.values()) / count
    top = sorted(meter.commands.items(), key=lambda item: -item[1])[:30]
    bench.log(
        f"{label}: {rate:,.0f} orders/s; CPU ms per order: workers {workers_cpu:.2f}, "
        f"redis-server {meter.used['redis-server']:.3f}; {commands:.1f} Redis commands per "
        "order (" + ", ".join(f"{name} {n / count:.1f}" for name, n in top) + ")"
    )
    return {
        "rate": rate,
        "workers_cpu": workers_cpu,
        "redis_cpu": meter.used["redis-server"],
        "commands": commands,
        "by_command": {name: round(n / count, 2) for name, n in top},
        "cpu_by_process": {
            "workers": round(workers_cpu, 2),
            **{k: round(v, 2) for k, v in meter.used.items() if not k.startswith("worker-")},
        },
        "bytes_per_order": meter.bytes_per_order,
    }


def anatomy(
    bench: Bench, stack: Stack, client: redis.Redis, port: int, count: int
) -> dict[str, Any]:
    """What one order sends Redis, from MONITOR (untimed: MONITOR slows Redis down): the
    commands clients send (each one a request, several to a round trip when pipelined)
    and those Lua scripts run inside Redis, per order, by command."""
    workers = start_workers(stack, 2, bare=False)
    try:
        project_run(bench, stack, port, 40, None, "anatomy warm-up")
        monitor = Monitor(stack.redis_server.url)
        try:
            project_run(bench, stack, port, count, None, "anatomy (MONITOR on)")
        finally:
            monitor.close()
    finally:
        stop_workers(stack, workers)
    sent: dict[str, int] = {}
    scripted: dict[str, int] = {}
    for seen in monitor.seen:
        name = seen.command.split(" ", 1)[0].lower()
        table = scripted if seen.client == "lua" else sent
        table[name] = table.get(name, 0) + 1

    def per_order(table: dict[str, int]) -> dict[str, float]:
        ordered = sorted(table.items(), key=lambda item: -item[1])
        return {name: round(n / count, 2) for name, n in ordered if n / count >= 0.05}

    figures = {
        "sent": sum(sent.values()) / count,
        "scripted": sum(scripted.values()) / count,
        "sent_by_command": per_order(sent),
        "scripted_by_command": per_order(scripted),
    }
    bench.log(
        f"anatomy: {figures['sent']:.1f} commands sent per order, "
        f"{figures['scripted']:.1f} run inside scripts; sent: {figures['sent_by_command']}"
    )
    return figures


def idle(bench: Bench, stack: Stack, client: redis.Redis, bare: bool) -> dict[str, Any]:
    """Redis commands per second and per worker of two idle worker processes (defaults:
    visibility timeout and liveness settings unset, whatever the stack's own)."""
    defaults = {
        "VISIBILITY_TIMEOUT_SECONDS": "",
        "WORKER_HEARTBEAT_SECONDS": "",
        "WORKER_LOST_AFTER_SECONDS": "",
    }
    workers = start_workers(stack, 2, bare, **defaults)
    window = 30.0 if bench.quick else 120.0
    try:
        time.sleep(40.0)  # past WORKER_LOST_AFTER_SECONDS: each worker judges others now
        before, started = command_counts(client), time.monotonic()
        time.sleep(window)
        after, took = command_counts(client), time.monotonic() - started
    finally:
        stop_workers(stack, workers)
    per = {
        name: round((count - before.get(name, 0)) / took / len(workers), 3)
        for name, count in after.items()
        if count > before.get(name, 0) and name not in IDLE_NOISE
    }
    label = "bare" if bare else "project"
    total = sum(per.values())
    bench.log(f"idle {label}: {total:.2f} Redis commands per worker and second: {per}")
    return {"total": total, "by_command": dict(sorted(per.items(), key=lambda i: -i[1]))}


IDLE_NOISE = frozenset({"replconf", "info", "ping"})
"""What the replica and this benchmark send while the workers idle (not the workers')."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""
    with Bench("scaling", "orders/s with 1, 2, 4 worker processes; Redis per order", argv) as bench:
        count = 300 if bench.quick else 1500
        stack = new_stack(bench, VENDOR_ADAPTER="bench.null_vendor:NullVendor")
        replica = RedisServer(
            bench.tmp / "replica", appendonly=False, replica_of=stack.redis_server.address
        ).start()
        client = redis.Redis.from_url(stack.redis_server.url)
        try:
            wait_until(lambda: client.info("replication")["connected_slaves"] == 1, 30)
            web = start_web(stack, "receiver")
            runs: dict[str, list[dict[str, Any]]] = {}
            for round_number in range(1, bench.args.rounds + 1):
                for size in SIZES:
                    for bare in (True, False):
                        name = f"{'bare' if bare else 'project'}-{size}"
                        label = f"round {round_number} {name} worker process(es)"
                        figures = measure(
                            bench, stack, client, web.port, size, count, bare, label, web.proc.pid
                        )
                        runs.setdefault(name, []).append(figures)
                    if size == 2:  # right after its WAIT 0 twin, so a neighbour hurts both alike
                        label = f"round {round_number} project-2 with REDIS_WAIT_REPLICAS=1"
                        figures = measure(
                            bench, stack, client, web.port, 2, count, False, label,
                            web.proc.pid, REDIS_WAIT_REPLICAS="1",
                        )  # fmt: skip
                        runs.setdefault("project-2-wait", []).append(figures)
            parts = anatomy(bench, stack, client, web.port, 100 if bench.quick else 300)
            bench.details["ledger after the run"] = stack.ledger.counts()
            idle_bare = idle(bench, stack, client, bare=True)
            idle_project = idle(bench, stack, client, bare=False)
        finally:
            client.close()
            stack.stop()
            replica.stop()

        def top(name: str, key: str, higher: bool = True) -> float:
            return best((run[key] for run in runs[name]), higher_is_better=higher)

        for size in SIZES:
            bench.add(
                Comparison(
                    f"orders/s, {size} worker process(es)",
                    "/s",
                    top(f"project-{size}", "rate"),
                    top(f"bare-{size}", "rate"),
                    f"Celery task, one httpx POST ({size} process(es))",
                )
            )
            bench.add(
                Comparison(
                    f"worker CPU per order, {size} process(es)",
                    "ms",
                    top(f"project-{size}", "workers_cpu", higher=False),
                    top(f"bare-{size}", "workers_cpu", higher=False),
                    f"Celery task, one httpx POST ({size} process(es))",
                    higher_is_better=False,
                )
            )
        bench.add(
            Comparison(
                "Redis commands per order (2 processes)",
                "",
                top("project-2", "commands", higher=False),
                top("bare-2", "commands", higher=False),
                "Celery task, one httpx POST",
                higher_is_better=False,
                note="INFO commandstats before and after",
            )
        )
        redis_ms = top("project-2", "redis_cpu", higher=False)
        bench.add(
            Comparison(
                "redis-server CPU per order (2 processes)",
                "ms",
                redis_ms,
                top("bare-2", "redis_cpu", higher=False),
                "Celery task, one httpx POST",
                higher_is_better=False,
                note=f"one Redis core: ≤ {1000 / redis_ms:,.0f} orders/s",
            )
        )
        bench.add(
            Comparison(
                "orders/s, 2 processes, REDIS_WAIT_REPLICAS=1",
                "/s",
                top("project-2-wait", "rate"),
                top("project-2", "rate"),
                "the same with REDIS_WAIT_REPLICAS=0",
            )
        )
        bench.add(
            Comparison(
                "worker CPU per order, 2 processes, REDIS_WAIT_REPLICAS=1",
                "ms",
                top("project-2-wait", "workers_cpu", higher=False),
                top("project-2", "workers_cpu", higher=False),
                "the same with REDIS_WAIT_REPLICAS=0",
                higher_is_better=False,
            )
        )
        bench.add(
            Comparison(
                "Redis commands per order, REDIS_WAIT_REPLICAS=1",
                "",
                top("project-2-wait", "commands", higher=False),
                top("project-2", "commands", higher=False),
                "the same with REDIS_WAIT_REPLICAS=0",
                higher_is_better=False,
            )
        )
        bench.add(
            Comparison(
                "Redis commands a client sends per order (MONITOR, 2 processes)",
                "",
                parts["sent"],
                top("bare-2", "commands", higher=False),
                "Celery task, one httpx POST (commandstats)",
                higher_is_better=False,
                note=f"+ {parts['scripted']:.1f} run inside Lua scripts",
            )
        )
        bench.add(
            Comparison(
                "Redis commands per idle worker and second",
                "",
                idle_project["total"],
                idle_bare["total"],
                "bare Celery worker, idle",
                higher_is_better=False,
                note="default settings; commandstats",
            )
        )
        bench.details["idle, per worker and second, by command (project)"] = idle_project[
            "by_command"
        ]
        bench.details["idle, per worker and second, by command (bare)"] = idle_bare["by_command"]
        bench.details["per order, sent by clients (MONITOR)"] = parts["sent_by_command"]
        bench.details["per order, run inside scripts (MONITOR)"] = parts["scripted_by_command"]
        bench.details["Redis commands per order, by command (best round)"] = {
            name: min(runs[name], key=lambda run: run["commands"])["by_command"]
            for name in ("project-2", "project-2-wait", "bare-2")
        }
        bench.details["CPU ms per order by process (N=2, best round by rate)"] = {
            name: max(runs[name], key=lambda run: run["rate"])["cpu_by_process"]
            for name in ("project-2", "bare-2")
        }
        bench.details["Redis memory per order kept (bytes, project, N=2)"] = round(
            min(run["bytes_per_order"] for run in runs["project-2"])
        )
        bench.details["redis-server CPU ms per order (project, by N)"] = {
            size: round(top(f"project-{size}", "redis_cpu", higher=False), 3) for size in SIZES
        }
        bench.details["orders per run"] = count
        bench.details["layout"] = (
            "one primary + one replica; receiver: gunicorn (Procfile web); N celery workers, "
            "prefork c=1 each; vendor: bench.null_vendor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
