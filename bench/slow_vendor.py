"""``python -m bench.slow_vendor``: orders/s against a vendor that takes its time, per pool.

Real vendor APIs answer in hundreds of milliseconds to seconds; a worker's rate is then its
calls in flight divided by the vendor's latency, whatever its CPU. One Redis, one sandbox,
the receiver (Procfile ``web``), and for each vendor latency (100 ms, 500 ms, 2 s: a vendor
stub that does the work and answers that much later) and each pool:

* the project: **one** worker from the Procfile ``worker`` line (``WORKER_POOL``,
  ``WORKER_CONCURRENCY``) with the ``http`` adapter against the stub; a burst of webhooks
  sent as fast as the receiver takes them;
* the bare baseline: ``bench.bare_vendor`` from the same line, same pool and concurrency:
  one Celery task making the same vendor call, then the result POST, published from here.

Per row: orders/s (N / (last result − first send)), p50/p99 from send to result stored
(every order of the burst: mostly its wait in the queue, so they grow with the burst), the
worker's CPU per order and its peak RSS (celery main and pool processes), lost and
duplicated results (the run stops on either).
Each run drains a short burst (about eight seconds of the pool's ideal rate, at least 20
orders, at most ``--orders``): the figures are rates, not a soak.

Every ratio is of orders/s (each row's own N over its own drain), so rows of different N
compare: the time to drain 2,000 orders at a row's rate is 2,000 / its orders/s.

Then **backpressure** (``--parts backpressure``): a vendor that slows under load, its
latency (:data:`BP_LATENCY`) doubled for every :data:`BP_DOUBLE_EVERY` other calls in
flight, and one gevent worker (c=100) against it, without a cap and with
``VENDOR_MAX_IN_FLIGHT`` = :data:`BP_CAP`; beside the bare task under gevent at c=100 (no
cap) and at c=:data:`BP_CAP` (what a cap amounts to for one worker). Each row also says the
most calls the vendor had in flight at once.

Targets (issue 28): gevent ≥ 0.8 × the bare task at every latency; at 500 ms, gevent
≥ 25 × prefork c=2; the gevent worker's RSS under 300 MiB.
"""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass

import psutil

from bench.common import (
    Bench,
    Comparison,
    new_stack,
    percentile,
    start_web,
    tree,
    worker_command,
)
from bench.pipeline import CpuMeter, bare_run, project_run
from tests.support.procs import Proc, free_port
from tests.support.stack import Stack
from tests.support.vendor_stub import Script, VendorStub

LATENCIES = (0.1, 0.5, 2.0)
POOLS = (("prefork", 2), ("prefork", 8), ("gevent", 100))
DRAIN_SECONDS = 8.0
BP_LATENCY = 0.5
"""The load-sensitive vendor's latency with no other call in flight."""
BP_DOUBLE_EVERY = 20
"""Its latency doubles for every this many other calls in flight."""
BP_CAP = 20
"""``VENDOR_MAX_IN_FLIGHT`` of the capped row."""
BP_ORDERS = 200
"""Orders per backpressure run (``--quick``: 120)."""


@dataclass
class Row:
    """One pool at one latency, project or bare."""

    rate: float
    p50: float
    p99: float
    cpu_ms: float
    rss_mib: float
    orders: int
    vendor_max: int = 0
    """The most calls the vendor had in flight at once."""


class PeakRss:
    """The highest RSS (MiB) of a process tree, sampled every 0.2 s while running."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                total = sum(p.memory_info().rss for p in tree(self.pid))
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total / 2**20)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def orders_for(bench: Bench, concurrency: int, latency: float) -> int:
    """About :data:`DRAIN_SECONDS` of the pool's ideal rate, within [20, ``--orders``]."""
    return max(20, min(int(bench.args.orders), int(concurrency / latency * DRAIN_SECONDS)))


def start_bare(stack: Stack, pool: str, concurrency: int, vendor: VendorStub) -> Proc:
    """``bench.bare_vendor`` on the Procfile ``worker`` line, ``pool`` × ``concurrency``."""
    env = {
        "WORKER_POOL": pool,
        "WORKER_CONCURRENCY": str(concurrency),
        "VENDOR_HTTP_URL": vendor.url,
        "PORT": str(free_port()),
    }
    proc = Proc(
        f"bare-{pool}-{concurrency}",
        worker_command("bench.bare_vendor"),
        {**stack.env, **env},
        stack.tmp_path,
    )
    stack.procs.append(proc)
    proc.wait_log("ready.", timeout=60)
    return proc


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--orders", type=int, default=2000, help="most orders per run (default 2000)"
        )
        parser.add_argument(
            "--latencies",
            default=",".join(f"{x:g}" for x in LATENCIES),
            help="vendor latencies of the pool rows, seconds, comma-separated (default 0.1,0.5,2)",
        )
        parser.add_argument(
            "--parts",
            default="pools,backpressure",
            help="what to run: pools (each pool beside its bare task), backpressure (a vendor "
            "that slows under load, with and without VENDOR_MAX_IN_FLIGHT); default both",
        )

    with Bench(
        "slow_vendor", "orders/s per pool against a vendor that answers late", argv, extra
    ) as bench:
        if bench.quick:
            bench.args.orders = min(bench.args.orders, 300)
        latencies = tuple(float(x) for x in bench.args.latencies.split(",") if x)
        parts = set(bench.args.parts.split(","))
        stack = new_stack(bench)
        rows: dict[tuple[float, str, int, str], Row] = {}
        pressed: dict[str, Row] = {}
        try:
            web = start_web(stack, "receiver")
            for latency in latencies if "pools" in parts else ():
                for pool, concurrency in POOLS:
                    count = orders_for(bench, concurrency, latency)
                    name = f"{latency * 1000:.0f} ms {pool} c={concurrency}"
                    # A stub per run: the sandbox's ids start over at each reset, and a stub
                    # that had seen an Idempotency-Key would answer it at once.
                    with VendorStub(default=Script(delay_after=latency)) as vendor:
                        worker = stack.start_worker(
                            f"worker-{pool}-{concurrency}",
                            concurrency=concurrency,
                            WORKER_POOL=pool,
                            VENDOR_ADAPTER="http",
                            VENDOR_HTTP_URL=vendor.url,
                            VENDOR_HTTP_TIMEOUT_SECONDS="30",
                        )
                        label = f"{name} project ({count} orders)"
                        rows[(latency, pool, concurrency, "project")] = _run(
                            bench, worker, label, count, stack, web.port, project=True
                        )
                        worker.stop()
                        once = {len(vendor.provisionings(p["requestId"])) for p in vendor.done}
                        if once != {1}:
                            raise SystemExit(f"{label}: provisioned {once} times")
                    with VendorStub(default=Script(delay_after=latency)) as vendor:
                        bare = start_bare(stack, pool, concurrency, vendor)
                        label = f"{name} bare ({count} orders)"
                        rows[(latency, pool, concurrency, "bare")] = _run(
                            bench, bare, label, count, stack, web.port, project=False
                        )
                        bare.stop()
            if "backpressure" in parts:
                pressed = backpressure(bench, stack, web.port)
            bench.details["ledger after the run"] = stack.ledger.counts()
        finally:
            stack.stop()
        report(bench, rows, latencies)
        if pressed:
            report_backpressure(bench, pressed)
    return 0


def backpressure(bench: Bench, stack: Stack, port: int) -> dict[str, Row]:
    """The load-sensitive vendor against one gevent worker without and with a cap, and
    the bare task at c=100 and c=:data:`BP_CAP`."""
    count = 120 if bench.quick else BP_ORDERS
    out: dict[str, Row] = {}
    name = f"backpressure ({BP_LATENCY * 1000:.0f} ms, doubling per {BP_DOUBLE_EVERY} in flight)"
    for key, cap in (("no cap", 0), (f"cap {BP_CAP}", BP_CAP)):
        with _loaded_vendor() as vendor:
            worker = stack.start_worker(
                f"worker-bp-{cap}",
                concurrency=100,
                WORKER_POOL="gevent",
                VENDOR_ADAPTER="http",
                VENDOR_HTTP_URL=vendor.url,
                VENDOR_HTTP_TIMEOUT_SECONDS="60",
                VENDOR_MAX_IN_FLIGHT=str(cap),
            )
            label = f"{name}: project gevent c=100, {key} ({count} orders)"
            row = _run(bench, worker, label, count, stack, port, project=True)
            worker.stop()
            once = {len(vendor.provisionings(p["requestId"])) for p in vendor.done}
            if once != {1}:
                raise SystemExit(f"{label}: provisioned {once} times")
            out[f"project {key}"] = _with_max(bench, row, vendor, label)
    for concurrency in (100, BP_CAP):
        with _loaded_vendor() as vendor:
            bare = start_bare(stack, "gevent", concurrency, vendor)
            label = f"{name}: bare gevent c={concurrency} ({count} orders)"
            row = _run(bench, bare, label, count, stack, port, project=False)
            bare.stop()
            out[f"bare c={concurrency}"] = _with_max(bench, row, vendor, label)
    return out


def _loaded_vendor() -> VendorStub:
    return VendorStub(default=Script(delay_after=BP_LATENCY), double_every=BP_DOUBLE_EVERY)


def _with_max(bench: Bench, row: Row, vendor: VendorStub, label: str) -> Row:
    bench.log(f"{label}: at most {vendor.max_in_flight} vendor calls in flight")
    row.vendor_max = vendor.max_in_flight
    return row


def _run(
    bench: Bench,
    worker: Proc,
    label: str,
    count: int,
    stack: Stack,
    port: int,
    *,
    project: bool,
) -> Row:
    meter = CpuMeter({"worker": worker.pid})
    with PeakRss(worker.pid) as rss:
        if project:
            rate, latencies = project_run(bench, stack, port, count, None, label, meter, 0.0)
        else:
            rate, latencies = bare_run(bench, stack, count, None, label, meter, 0.0)
    row = Row(
        rate,
        percentile(latencies, 50),
        percentile(latencies, 99),
        meter.used["worker"],
        rss.peak,
        count,
    )
    bench.log(
        f"{label}: {rate:,.1f} orders/s, p50 {row.p50:,.0f} ms, p99 {row.p99:,.0f} ms, "
        f"worker CPU {row.cpu_ms:.1f} ms/order, peak RSS {rss.peak:,.0f} MiB"
    )
    return row


def report(
    bench: Bench, rows: dict[tuple[float, str, int, str], Row], latencies: tuple[float, ...]
) -> None:
    """The comparisons: each pool beside its bare task, and gevent beside prefork c=2; and
    the issue's table (markdown)."""
    if not rows:
        return
    lines = [
        "| vendor latency | pool | orders | orders/s | p50 / p99 (ms) | worker CPU / order "
        "| peak RSS | bare orders/s | × bare | lost / twice |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for latency in latencies:
        for pool, concurrency in POOLS:
            p = rows[(latency, pool, concurrency, "project")]
            b = rows[(latency, pool, concurrency, "bare")]
            lines.append(
                f"| {latency * 1000:.0f} ms | {pool} c={concurrency} | {p.orders} | "
                f"{p.rate:.2f} | {p.p50:,.0f} / {p.p99:,.0f} | {p.cpu_ms:.1f} ms | "
                f"{p.rss_mib:,.0f} MiB | {b.rate:.2f} | {p.rate / b.rate:.2f} | 0 / 0 |"
            )
    for latency in latencies:
        g = rows[(latency, "gevent", 100, "project")].rate
        c2 = rows[(latency, "prefork", 2, "project")].rate
        lines.append(
            f"\ngevent c=100 / prefork c=2 at {latency * 1000:.0f} ms: {g / c2:.1f}× "
            f"(2,000 orders: {2000 / g:,.0f} s against {2000 / c2:,.0f} s)"
        )
    print("\n" + "\n".join(lines) + "\n", flush=True)
    for latency in latencies:
        for pool, concurrency in POOLS:
            project = rows[(latency, pool, concurrency, "project")]
            bare = rows[(latency, pool, concurrency, "bare")]
            green = pool == "gevent"
            bench.add(
                Comparison(
                    f"{latency * 1000:.0f} ms vendor, {pool} c={concurrency}: orders/s",
                    "/s",
                    project.rate,
                    bare.rate,
                    f"bare task, same call, {pool} c={concurrency}",
                    target="≥ 0.8 × bare" if green else "",
                    met=project.rate >= 0.8 * bare.rate if green else None,
                    note=(
                        f"{project.orders} orders; p50/p99 {project.p50:,.0f}/{project.p99:,.0f}"
                        f" ms (bare {bare.p50:,.0f}/{bare.p99:,.0f}); worker CPU "
                        f"{project.cpu_ms:.1f} ms/order (bare {bare.cpu_ms:.1f}); peak RSS "
                        f"{project.rss_mib:,.0f} MiB (bare {bare.rss_mib:,.0f})"
                    ),
                )
            )
        gevent = rows[(latency, "gevent", 100, "project")]
        prefork = rows[(latency, "prefork", 2, "project")]
        at_500 = latency == 0.5
        bench.add(
            Comparison(
                f"{latency * 1000:.0f} ms vendor: gevent c=100 vs prefork c=2 (today)",
                "/s",
                gevent.rate,
                prefork.rate,
                "the project on prefork c=2",
                target="≥ 25 × prefork c=2" if at_500 else "",
                met=gevent.rate >= 25 * prefork.rate if at_500 else None,
            )
        )
    peak = max(rows[(lat, "gevent", 100, "project")].rss_mib for lat in latencies)
    bench.details["gevent worker peak RSS (MiB; target < 300)"] = round(peak)
    bench.details["pools"] = ", ".join(f"{p} c={c}" for p, c in POOLS)
    bench.details["receiver"] = "gunicorn, 2 gevent workers (Procfile web line)"


def report_backpressure(bench: Bench, rows: dict[str, Row]) -> None:
    """The backpressure rows: a table, and the capped worker beside the uncapped one and
    beside the bare task at the cap's concurrency."""
    lines = [
        f"backpressure: vendor {BP_LATENCY * 1000:.0f} ms, doubling per {BP_DOUBLE_EVERY} "
        "other calls in flight",
        "| run | orders | orders/s | p50 / p99 (ms) | most vendor calls in flight "
        "| worker CPU / order |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in rows.items():
        lines.append(
            f"| {key} | {row.orders} | {row.rate:.2f} | {row.p50:,.0f} / {row.p99:,.0f} | "
            f"{row.vendor_max} | {row.cpu_ms:.1f} ms |"
        )
    print("\n" + "\n".join(lines) + "\n", flush=True)
    capped, free = rows[f"project cap {BP_CAP}"], rows["project no cap"]
    bench.add(
        Comparison(
            f"load-sensitive vendor: gevent c=100 with VENDOR_MAX_IN_FLIGHT={BP_CAP}, orders/s",
            "/s",
            capped.rate,
            rows[f"bare c={BP_CAP}"].rate,
            f"bare task, gevent c={BP_CAP}",
            note=(
                f"without the cap {free.rate:.2f}/s (p99 {free.p99:,.0f} ms, "
                f"{free.vendor_max} in flight); with it p99 {capped.p99:,.0f} ms, "
                f"{capped.vendor_max} in flight"
            ),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
