"""``python -m bench.wait``: what ``REDIS_WAIT_REPLICAS=1`` costs the receiver.

One Redis primary with one replica (on this machine, so a confirmation is a loopback round
trip through the replica process), and two receivers from the Procfile ``web`` line
(gunicorn, 2 gevent workers, ``--preload``) on it: one with ``REDIS_WAIT_REPLICAS=0``
(the bare baseline here: the same receiver, acknowledging what the primary holds) and one
with ``REDIS_WAIT_REPLICAS=1`` (answering 202 only once the replica confirmed the record
and the task: the accept script, an INCR and WAIT in one pipeline).

1. **Peak**: wrk (``bench/webhook.lua``, every request a distinct notification, 8
   connections) against each in turn, after a warm-up; 2xx answers per second and gunicorn
   CPU per webhook. Rounds alternate the two, the best counts.
2. **Latency at half the WAIT 0 peak**: wrk paced (8 connections, each waiting
   ``8000 / rate`` ms before each request), p50 and p99 of each.

Answers other than 202 (a 503: the replica did not confirm within
``REDIS_WAIT_TIMEOUT_MS``) are counted. No worker runs: enqueued tasks wait in Redis.
"""

from __future__ import annotations

import sys

import redis

from bench.common import (
    Bench,
    Comparison,
    Web,
    best,
    new_stack,
    run_wrk,
    web_command,
    wrk_peak,
)
from cli.redis_server import RedisServer
from tests.support.procs import Proc, free_port, wait_until
from tests.support.stack import Stack

LABEL = "the same receiver, REDIS_WAIT_REPLICAS=0"


def start_receiver(stack: Stack, name: str, replicas: int) -> Web:
    """A receiver from the Procfile ``web`` line with ``REDIS_WAIT_REPLICAS=replicas``."""
    port = free_port()
    env = {
        "WEB_CONCURRENCY": "2",
        "BIND_HOST": "127.0.0.1",
        "PORT": str(port),
        "REDIS_WAIT_REPLICAS": str(replicas),
    }
    proc = Proc(name, web_command("receiver.wsgi:app"), {**stack.env, **env}, stack.tmp_path)
    stack.procs.append(proc)
    proc.wait_http(f"http://127.0.0.1:{port}/healthz")
    return Web(name, proc, port)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""
    with Bench("wait", "the receiver with and without REDIS_WAIT_REPLICAS=1", argv) as bench:
        seconds = 3.0 if bench.quick else 10.0
        warmup = 1.0 if bench.quick else 2.0
        stack = new_stack(bench)
        replica = RedisServer(
            bench.tmp / "replica", appendonly=False, replica_of=stack.redis_server.address
        ).start()
        client = redis.Redis.from_url(stack.redis_server.url)
        try:
            wait_until(lambda: client.info("replication")["connected_slaves"] == 1, 30)
            webs = [start_receiver(stack, "wait-0", 0), start_receiver(stack, "wait-1", 1)]
            peaks: dict[str, list[float]] = {web.name: [] for web in webs}
            cpu: dict[str, list[float]] = {web.name: [] for web in webs}
            refused: dict[str, int] = {web.name: 0 for web in webs}
            for round_number in range(1, bench.args.rounds + 1):
                for web in webs:
                    result, used = wrk_peak(web, warmup, seconds)
                    cpu[web.name].append(used)
                    peaks[web.name].append(result.rate)
                    refused[web.name] += result.bad
                    bench.log(
                        f"round {round_number} peak {web.name}: {result.rate:,.0f}/s "
                        f"({result.ok} 2xx, {result.bad} other; p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms; {cpu[web.name][-1]:.2f} CPU ms/webhook)"
                    )
            rate = best(peaks["wait-0"]) / 2
            p50: dict[str, list[float]] = {web.name: [] for web in webs}
            p99: dict[str, list[float]] = {web.name: [] for web in webs}
            achieved: list[float] = []
            for round_number in range(1, bench.args.rounds + 1):
                for web in webs:
                    paced = run_wrk(web.url, seconds, pace_ms=8 * 1000 / rate)
                    p50[web.name].append(paced.p50_ms)
                    achieved.append(paced.rate)
                    p99[web.name].append(paced.p99_ms)
                    refused[web.name] += paced.bad
                    bench.log(
                        f"round {round_number} paced {web.name} at ~{paced.rate:,.0f}/s: "
                        f"p50 {paced.p50_ms:.2f} ms, p99 {paced.p99_ms:.2f} ms"
                    )
            bench.details["answers other than 2xx"] = refused
            bench.details["replica confirmations (WAIT) on the primary"] = int(
                client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
            )
        finally:
            client.close()
            stack.stop()
            replica.stop()
        bench.add(
            Comparison(
                "acknowledged webhooks/s (peak), WAIT 1 replica",
                "/s",
                best(peaks["wait-1"]),
                best(peaks["wait-0"]),
                LABEL,
            )
        )
        bench.add(
            Comparison(
                "gunicorn CPU per webhook, WAIT 1 replica",
                "ms",
                best(cpu["wait-1"], higher_is_better=False),
                best(cpu["wait-0"], higher_is_better=False),
                LABEL,
                higher_is_better=False,
            )
        )
        for label, series in (("p50", p50), ("p99", p99)):
            bench.add(
                Comparison(
                    f"{label} latency at half the WAIT 0 peak (paced wrk, ~{min(achieved):,.0f}/s),"
                    " WAIT 1 replica",
                    "ms",
                    best(series["wait-1"], higher_is_better=False),
                    best(series["wait-0"], higher_is_better=False),
                    LABEL,
                    higher_is_better=False,
                )
            )
        bench.details["layout"] = (
            "one primary + one replica (loopback); receivers: gunicorn, 2 gevent workers"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
