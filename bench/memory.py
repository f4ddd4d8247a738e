"""``python -m bench.memory``: peak RSS of the receiver and of a worker after a fixed load.

On one Redis and one sandbox, all from the Procfile lines with the same settings:

* the receiver (``web``: gunicorn master + 2 sync workers, ``--preload``) against
  ``bench.bare_send_task:app`` (Flask + Celery ``send_task``) and
  ``bench.bare_plain:app`` (Flask answering 200);
* one project worker (``worker``, prefork c=2: celery main + 2 pool processes) against
  the bare worker ``bench.bare_celery`` (same line, same pool).

The load: N orders through the project (webhooks to the receiver, provisioned by the
``example`` vendor, results posted to the sandbox) and N through the bare pipeline
(webhooks to the bare ``send_task`` route, a bare task posting each result), then N
webhooks to the plain route. A sampler reads every process's RSS (psutil) every 0.2 s;
the figures are the peaks, per process and summed per tree (RSS counts pages a
``--preload``ed master shares with its workers in each of them; the USS sums at the end
are printed too). Target (the issue): RSS ≤ 1.5 × bare.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field

import psutil

from bench.common import (
    WEBHOOK_TEMPLATE,
    Bench,
    Comparison,
    acknowledged_requests,
    collect,
    new_stack,
    run_load,
    start_bare_worker,
    start_web,
    tree,
    webhook_items,
)

MIB = 1024 * 1024


@dataclass
class Peaks:
    """Peak RSS per process of one process tree, and of the tree as a whole."""

    root: int
    per_process: dict[int, int] = field(default_factory=dict)
    total: int = 0
    uss_end: int = 0

    def sample(self) -> None:
        """Read the tree once."""
        total = 0
        for process in tree(self.root):
            try:
                rss = process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            total += rss
            self.per_process[process.pid] = max(self.per_process.get(process.pid, 0), rss)
        self.total = max(self.total, total)

    def finish(self) -> None:
        """Sum the unique set sizes now (after the load)."""
        self.uss_end = 0
        for process in tree(self.root):
            try:
                self.uss_end += process.memory_full_info().uss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def children_peak(self) -> int:
        """The largest peak among the root's descendants (gunicorn or pool workers)."""
        return max((v for pid, v in self.per_process.items() if pid != self.root), default=0)


class Sampler(threading.Thread):
    """Samples every tree every ``interval`` seconds until stopped."""

    def __init__(self, trees: dict[str, Peaks], interval: float = 0.2) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.trees = trees
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        while not self.stopped.is_set():
            for peaks in self.trees.values():
                peaks.sample()
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        """Take a last sample and stop."""
        self.stopped.set()
        self.join(5)
        for peaks in self.trees.values():
            peaks.sample()
            peaks.finish()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""
    with Bench("memory", "peak RSS of receiver and worker after a fixed load", argv) as bench:
        count = 300 if bench.quick else 3000
        stack = new_stack(bench)
        try:
            receiver = start_web(stack, "receiver")
            bare_send = start_web(stack, "bare-send-task", "bench.bare_send_task:app")
            bare_plain = start_web(stack, "bare-plain", "bench.bare_plain:app")
            worker = stack.start_worker(concurrency=2)
            bare_worker = start_bare_worker(stack, concurrency=2)
            trees = {
                "receiver": Peaks(receiver.proc.pid),
                "bare-send-task": Peaks(bare_send.proc.pid),
                "bare-plain": Peaks(bare_plain.proc.pid),
                "worker": Peaks(worker.pid),
                "bare-worker": Peaks(bare_worker.pid),
            }
            for peaks in trees.values():
                peaks.sample()
            idle = {name: peaks.total for name, peaks in trees.items()}
            sampler = Sampler(trees)
            sampler.start()
            for name, web in (("project", receiver), ("bare", bare_send)):
                requests = acknowledged_requests(stack, count)
                load = run_load(bench.tmp / "load", web.port, items=webhook_items(requests))
                found = collect(stack, [r["id"] for r in requests], timeout=max(120, count / 5))
                bench.log(
                    f"{name}: {load.ok()}/{count} webhooks acknowledged, {found.distinct} "
                    f"results, lost {found.lost}, duplicates {found.duplicates}"
                )
            load = run_load(
                bench.tmp / "load",
                bare_plain.port,
                generate={"path": "/webhooks/pax8", "template": WEBHOOK_TEMPLATE, "count": count},
            )
            bench.log(f"plain: {load.ok()}/{count} webhooks answered")
            sampler.stop()
        finally:
            stack.stop()
        for name, peaks in trees.items():
            bench.details[f"{name} RSS MiB"] = (
                f"idle {idle[name] / MIB:.1f}, peak {peaks.total / MIB:.1f} "
                f"(per process: "
                + ", ".join(f"{v / MIB:.1f}" for v in peaks.per_process.values())
                + f"); USS sum after the load {peaks.uss_end / MIB:.1f}"
            )
        rows = [
            ("receiver total (master + 2 workers)", "receiver", "bare-send-task", "total"),
            ("receiver total (master + 2 workers)", "receiver", "bare-plain", "total"),
            ("receiver, largest gunicorn worker", "receiver", "bare-send-task", "child"),
            ("receiver, largest gunicorn worker", "receiver", "bare-plain", "child"),
            ("worker total (main + 2 pool processes)", "worker", "bare-worker", "total"),
            ("worker, largest pool process", "worker", "bare-worker", "child"),
        ]
        names = {
            "bare-send-task": "gunicorn + Flask + send_task",
            "bare-plain": "gunicorn + Flask (200)",
            "bare-worker": "Celery worker, one httpx task",
        }
        for metric, project, bare, kind in rows:
            value = trees[project].total if kind == "total" else trees[project].children_peak()
            base = trees[bare].total if kind == "total" else trees[bare].children_peak()
            bench.add(
                Comparison(
                    f"peak RSS, {metric}",
                    "MiB",
                    value / MIB,
                    base / MIB,
                    names[bare],
                    higher_is_better=False,
                    target="≤ 1.5 × bare",
                    met=value <= 1.5 * base,
                )
            )
        bench.details["orders per pipeline"] = count
    return 0


if __name__ == "__main__":
    sys.exit(main())
