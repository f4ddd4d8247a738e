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

A shape ``2 × gevent c=100`` runs **two** such workers side by side (the Procfile's
``worker`` scaled to 2 with the default concurrency, ``honcho start -c worker=2``: one gevent
process per core of a 2-core host, as ``docs/scaling.md`` sizes them), beside two bare
workers; its CPU and RSS are the two processes' together. ``--pools`` picks the shapes.

Per row: orders/s (N / (last result − first send)), p50/p99 from send to result stored
(every order of the burst: mostly its wait in the queue, so they grow with the burst), the
worker's CPU per order and its peak RSS (celery main and pool processes), the vendor calls
retried (from the workers' logs) and the connections the vendor accepted, lost and
duplicated results (the run stops on either). The stub keeps connections alive, as a
vendor's API behind a production server does (``--vendor-connections close``: a new
connection per call), and its listen backlog is a production server's
(:data:`tests.support.loopback.BACKLOG`).
Each run drains a short burst (about eight seconds of the pool's ideal rate, at least 20
orders, at most ``--orders``; a gevent process is taken to reach :data:`GEVENT_CEILING`
orders/s at most, its CPU's bound, not its slots ÷ latency): the figures are rates, not a
soak.

Every ratio is of orders/s (each row's own N over its own drain), so rows of different N
compare: the time to drain 2,000 orders at a row's rate is 2,000 / its orders/s.

Then **backpressure** (``--parts backpressure``): a vendor that slows under load, its
latency (:data:`BP_LATENCY`) doubled for every :data:`BP_DOUBLE_EVERY` other calls in
flight, and one gevent worker (c=100) against it, without a cap and with
``VENDOR_MAX_IN_FLIGHT`` = :data:`BP_CAP`; beside the bare task under gevent at c=100 (no
cap) and at c=:data:`BP_CAP` (what a cap amounts to for one worker). Each row also says the
most calls the vendor had in flight at once.

Targets (issue 28): gevent ≥ 0.8 × the bare task at every latency; at 500 ms, gevent
≥ 25 × prefork c=2 on the same host (one gevent process, and two: a 2-core host's); the
gevent worker's RSS under 300 MiB.

Long on purpose: the pool rows and the backpressure rows are one benchmark's, sharing its
shapes, its vendor stub, its run and what it counts per row (retries, connections, peak
RSS), so they read and change together.
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


@dataclass(frozen=True)
class Shape:
    """What runs on the host in a row: ``processes`` workers of ``pool`` × ``concurrency``."""

    pool: str
    concurrency: int
    processes: int = 1

    @property
    def name(self) -> str:
        """``prefork c=2``, ``2 × gevent c=100``."""
        one = f"{self.pool} c={self.concurrency}"
        return one if self.processes == 1 else f"{self.processes} × {one}"

    @property
    def arg(self) -> str:
        """How ``--pools`` spells it: ``prefork:2``, ``gevent:100x2``."""
        suffix = f"x{self.processes}" if self.processes > 1 else ""
        return f"{self.pool}:{self.concurrency}{suffix}"

    @property
    def slots(self) -> int:
        """Calls in flight at most, all processes together."""
        return self.concurrency * self.processes


TODAY = Shape("prefork", 2)
"""The Procfile's default worker, which the gevent shapes are compared with."""
GEVENT = Shape("gevent", 100)
GEVENT_HOST = Shape("gevent", 100, 2)
"""One gevent worker per core of a 2-core host, the default concurrency each."""
POOLS = (TODAY, Shape("prefork", 8), GEVENT, GEVENT_HOST)
DRAIN_SECONDS = 8.0
GEVENT_CEILING = 120.0
"""Orders/s one gevent worker process can reach at most: one core at about 8 ms of worker
CPU per order (``bench.pipeline`` on a quiet core), whatever its slots ÷ latency; bounds
the gevent bursts (each still drains for more than :data:`DRAIN_SECONDS` at the rates
measured) so the full run stays near ten minutes with the two-process rows."""
BP_LATENCY = 0.5
"""The load-sensitive vendor's latency with no other call in flight."""
BP_DOUBLE_EVERY = 20
"""Its latency doubles for every this many other calls in flight."""
BP_CAP = 20
"""``VENDOR_MAX_IN_FLIGHT`` of the capped row."""
BP_ORDERS = 200
"""Orders per backpressure run (``--quick``: 120)."""
RETRIED = {True: " event=retry ", False: "] retry: Retry in "}
"""How a retried vendor call shows in a worker's log: the project's (True), the bare task's."""


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
    retries: int = 0
    """Vendor calls tried again (the workers' logs: the project's ``event=retry``, the bare
    task's Celery ``retry``)."""
    connections: int = 0
    """Connections the vendor accepted during the row (kept alive: about the slots)."""


class PeakRss:
    """The highest RSS (MiB) of process trees together, sampled every 0.2 s while running."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                total = sum(p.memory_info().rss for pid in self.pids for p in tree(pid))
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


def orders_for(bench: Bench, shape: Shape, latency: float) -> int:
    """About :data:`DRAIN_SECONDS` of the shape's ideal rate, within [20, ``--orders``]."""
    ideal = shape.slots / latency
    if shape.pool == "gevent":
        ideal = min(ideal, GEVENT_CEILING * shape.processes)
    return max(20, min(int(bench.args.orders), int(ideal * DRAIN_SECONDS)))


def start_bare(
    stack: Stack, pool: str, concurrency: int, vendor: VendorStub, index: int = 0
) -> Proc:
    """``bench.bare_vendor`` on the Procfile ``worker`` line, ``pool`` × ``concurrency``
    (``index`` tells apart the processes of one shape)."""
    env = {
        "WORKER_POOL": pool,
        "WORKER_CONCURRENCY": str(concurrency),
        "VENDOR_HTTP_URL": vendor.url,
        "PORT": str(free_port()),
    }
    proc = Proc(
        f"bare-{pool}-{concurrency}" + (f"-{index}" if index else ""),
        worker_command("bench.bare_vendor"),
        {**stack.env, **env},
        stack.tmp_path,
    )
    stack.procs.append(proc)
    proc.wait_log("ready.", timeout=60)
    return proc


def start_shape(stack: Stack, shape: Shape, vendor: VendorStub, *, bare: bool) -> list[Proc]:
    """The shape's worker processes against ``vendor``: the project's, or the bare task's."""
    if bare:
        return [
            start_bare(stack, shape.pool, shape.concurrency, vendor, index)
            for index in range(shape.processes)
        ]
    return [
        stack.start_worker(
            f"worker-{shape.pool}-{shape.concurrency}" + (f"-{index}" if index else ""),
            concurrency=shape.concurrency,
            WORKER_POOL=shape.pool,
            VENDOR_ADAPTER="http",
            VENDOR_HTTP_URL=vendor.url,
            VENDOR_HTTP_TIMEOUT_SECONDS="30",
        )
        for index in range(shape.processes)
    ]


def parse_pools(text: str) -> tuple[Shape, ...]:
    """``--pools``: shapes as ``pool:concurrency`` or ``pool:concurrency x processes``."""
    shapes: list[Shape] = []
    for item in filter(None, text.split(",")):
        pool, _, size = item.partition(":")
        concurrency, _, processes = size.partition("x")
        if pool not in ("prefork", "gevent") or not concurrency.isdigit():
            raise SystemExit(f"--pools: {item!r} is not prefork:N or gevent:N[xP]")
        shapes.append(Shape(pool, int(concurrency), int(processes) if processes else 1))
    return tuple(shapes)


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
            "--pools",
            default=",".join(shape.arg for shape in POOLS),
            help="the pool rows' shapes, pool:concurrency[xprocesses], comma-separated "
            f"(default {','.join(shape.arg for shape in POOLS)})",
        )
        parser.add_argument(
            "--vendor-connections",
            choices=("keep-alive", "close"),
            default="keep-alive",
            help="keep-alive (default): the stub keeps each connection for the next call, as a "
            "vendor's API behind a production server does; close: it closes each one after its "
            "answer (a new TCP connection per call)",
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
        shapes = parse_pools(bench.args.pools)
        stack = new_stack(bench)
        rows: dict[tuple[float, Shape, str], Row] = {}
        pressed: dict[str, Row] = {}
        try:
            web = start_web(stack, "receiver")
            for latency in latencies if "pools" in parts else ():
                for shape in shapes:
                    count = orders_for(bench, shape, latency)
                    name = f"{latency * 1000:.0f} ms {shape.name}"
                    # A stub per run: the sandbox's ids start over at each reset, and a stub
                    # that had seen an Idempotency-Key would answer it at once.
                    with _vendor(bench, latency) as vendor:
                        workers = start_shape(stack, shape, vendor, bare=False)
                        label = f"{name} project ({count} orders)"
                        rows[(latency, shape, "project")] = _run(
                            bench, workers, label, count, stack, web.port, vendor, project=True
                        )
                        for worker in workers:
                            worker.stop()
                        once = {len(vendor.provisionings(p["requestId"])) for p in vendor.done}
                        if once != {1}:
                            raise SystemExit(f"{label}: provisioned {once} times")
                    with _vendor(bench, latency) as vendor:
                        bares = start_shape(stack, shape, vendor, bare=True)
                        label = f"{name} bare ({count} orders)"
                        rows[(latency, shape, "bare")] = _run(
                            bench, bares, label, count, stack, web.port, vendor, project=False
                        )
                        for bare in bares:
                            bare.stop()
            if "backpressure" in parts:
                pressed = backpressure(bench, stack, web.port)
            bench.details["ledger after the run"] = stack.ledger.counts()
        finally:
            stack.stop()
        report(bench, rows, latencies, shapes)
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
        with _loaded_vendor(bench) as vendor:
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
            row = _run(bench, [worker], label, count, stack, port, vendor, project=True)
            worker.stop()
            once = {len(vendor.provisionings(p["requestId"])) for p in vendor.done}
            if once != {1}:
                raise SystemExit(f"{label}: provisioned {once} times")
            out[f"project {key}"] = _with_max(bench, row, vendor, label)
    for concurrency in (100, BP_CAP):
        with _loaded_vendor(bench) as vendor:
            bare = start_bare(stack, "gevent", concurrency, vendor)
            label = f"{name}: bare gevent c={concurrency} ({count} orders)"
            row = _run(bench, [bare], label, count, stack, port, vendor, project=False)
            bare.stop()
            out[f"bare c={concurrency}"] = _with_max(bench, row, vendor, label)
    return out


def _vendor(bench: Bench, latency: float) -> VendorStub:
    """The stub of one pool row: answers ``latency`` after the call; keeps connections open
    unless ``--vendor-connections close``."""
    return VendorStub(default=Script(delay_after=latency), keep_alive=_keep_alive(bench))


def _loaded_vendor(bench: Bench) -> VendorStub:
    return VendorStub(
        default=Script(delay_after=BP_LATENCY),
        double_every=BP_DOUBLE_EVERY,
        keep_alive=_keep_alive(bench),
    )


def _keep_alive(bench: Bench) -> bool:
    return str(bench.args.vendor_connections) == "keep-alive"


def _with_max(bench: Bench, row: Row, vendor: VendorStub, label: str) -> Row:
    bench.log(f"{label}: at most {vendor.max_in_flight} vendor calls in flight")
    row.vendor_max = vendor.max_in_flight
    return row


def _run(
    bench: Bench,
    workers: list[Proc],
    label: str,
    count: int,
    stack: Stack,
    port: int,
    vendor: VendorStub,
    *,
    project: bool,
) -> Row:
    meter = CpuMeter({worker.name: worker.pid for worker in workers})
    logged = {worker.name: len(worker.log(tail=100_000_000)) for worker in workers}
    accepted = vendor.connections
    with PeakRss([worker.pid for worker in workers]) as rss:
        if project:
            rate, latencies = project_run(bench, stack, port, count, None, label, meter, 0.0)
        else:
            rate, latencies = bare_run(bench, stack, count, None, label, meter, 0.0)
    row = Row(
        rate,
        percentile(latencies, 50),
        percentile(latencies, 99),
        sum(meter.used.values()),
        rss.peak,
        count,
        retries=sum(
            worker.log(tail=100_000_000)[logged[worker.name] :].count(RETRIED[project])
            for worker in workers
        ),
        connections=vendor.connections - accepted,
    )
    bench.log(
        f"{label}: {rate:,.1f} orders/s, p50 {row.p50:,.0f} ms, p99 {row.p99:,.0f} ms, "
        f"worker CPU {row.cpu_ms:.1f} ms/order, peak RSS {rss.peak:,.0f} MiB, "
        f"{row.retries} vendor calls retried, {row.connections} vendor connections"
    )
    return row


def report(
    bench: Bench,
    rows: dict[tuple[float, Shape, str], Row],
    latencies: tuple[float, ...],
    shapes: tuple[Shape, ...],
) -> None:
    """The comparisons: each shape beside its bare task, and the gevent shapes beside
    prefork c=2; and the issue's table (markdown)."""
    if not rows:
        return
    lines = [
        "| vendor latency | pool | orders | orders/s | p50 / p99 (ms) | worker CPU / order "
        "| peak RSS | bare orders/s | × bare | retries (bare) | vendor connections (bare) "
        "| lost / twice |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for latency in latencies:
        for shape in shapes:
            p = rows[(latency, shape, "project")]
            b = rows[(latency, shape, "bare")]
            lines.append(
                f"| {latency * 1000:.0f} ms | {shape.name} | {p.orders} | "
                f"{p.rate:.2f} | {p.p50:,.0f} / {p.p99:,.0f} | {p.cpu_ms:.1f} ms | "
                f"{p.rss_mib:,.0f} MiB | {b.rate:.2f} | {p.rate / b.rate:.2f} | "
                f"{p.retries} ({b.retries}) | {p.connections} ({b.connections}) | 0 / 0 |"
            )
    gevents = [shape for shape in shapes if shape.pool == "gevent"]
    if TODAY in shapes:
        for latency in latencies:
            c2 = rows[(latency, TODAY, "project")].rate
            for shape in gevents:
                g = rows[(latency, shape, "project")].rate
                lines.append(
                    f"\n{shape.name} / {TODAY.name} at {latency * 1000:.0f} ms: {g / c2:.1f}× "
                    f"(2,000 orders: {2000 / g:,.0f} s against {2000 / c2:,.0f} s)"
                )
    print("\n" + "\n".join(lines) + "\n", flush=True)
    for latency in latencies:
        for shape in shapes:
            project = rows[(latency, shape, "project")]
            bare = rows[(latency, shape, "bare")]
            green = shape.pool == "gevent"
            bench.add(
                Comparison(
                    f"{latency * 1000:.0f} ms vendor, {shape.name}: orders/s",
                    "/s",
                    project.rate,
                    bare.rate,
                    f"bare task, same call, {shape.name}",
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
        if TODAY not in shapes:
            continue
        prefork = rows[(latency, TODAY, "project")]
        at_500 = latency == 0.5
        for shape in gevents:
            gevent = rows[(latency, shape, "project")]
            bench.add(
                Comparison(
                    f"{latency * 1000:.0f} ms vendor: {shape.name} vs {TODAY.name} (today)",
                    "/s",
                    gevent.rate,
                    prefork.rate,
                    f"the project on {TODAY.name}",
                    target=f"≥ 25 × {TODAY.name}" if at_500 else "",
                    met=gevent.rate >= 25 * prefork.rate if at_500 else None,
                )
            )
    for shape in gevents:
        peak = max(rows[(lat, shape, "project")].rss_mib for lat in latencies)
        if shape == GEVENT:
            bench.details["gevent worker peak RSS (MiB; target < 300)"] = round(peak)
        else:
            bench.details[f"{shape.name} peak RSS (MiB, its processes together)"] = round(peak)
    bench.details["pools"] = ", ".join(shape.name for shape in shapes)
    bench.details["vendor connections"] = bench.args.vendor_connections
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
