"""``python -m bench.receiver``: acknowledged webhooks/s and latency of ``POST /webhooks/pax8``.

Three gunicorns from the Procfile ``web`` line (2 sync workers, ``--preload``), on one
Redis: the receiver (auth, parse, ledger record, enqueue), ``bench.bare_send_task:app``
(parse + one Celery ``send_task``) and ``bench.bare_plain:app`` (answer 200). No worker
runs: enqueued tasks wait in Redis.

1. **Peak**: wrk (``bench/webhook.lua``, every request a distinct notification) for a
   fixed time against each, after a short warm-up; 2xx answers per second. The rounds
   alternate the three so a noisy neighbour hurts them alike; the best round counts.
2. **Latency at half the receiver's peak**, two ways:

   * wrk, paced: 8 connections that each wait ``8000 / rate`` ms before every request
     offer about half the receiver's peak; wrk (C, about 0.1 ms of CPU per request)
     measures each answer. This is the figure the target is judged on: on 2 cores the
     load generator must not take the CPU it measures.
   * an open-loop client (``bench.loadgen``, 2 Python processes) offers the same rate;
     p50/p99 from when each request was due, leaving out the first second. It also
     counts the queue a slow server builds (no coordinated omission), but needs ~1.4 ms
     of CPU per request itself, so on 2 cores it saturates near 700/s: such rounds are
     flagged ``saturated`` and their latencies are the machine's queue.

Targets (the issue): receiver ≥ 0.8 × the bare ``send_task`` route; p99 < 25 ms at half peak.
"""

from __future__ import annotations

import sys
from typing import Any

from bench.common import (
    WEBHOOK_TEMPLATE,
    Bench,
    Comparison,
    Web,
    best,
    new_stack,
    percentile,
    run_load,
    run_wrk,
    start_web,
    wrk_peak,
)

# Seconds of open-loop load whose latencies are not counted (connections being opened).
WARMUP = 1.0


BARE_LABELS = {
    "bare-send-task": "Flask route + send_task",
    "bare-plain": "Flask route answering 200",
}


def latency_row(
    label: str, series: dict[str, list[float]], bare: str = "bare-send-task", **extra: Any
) -> Comparison:
    """The receiver's best (lowest) latency in ``series`` beside the ``bare`` app's."""
    return Comparison(
        label,
        "ms",
        best(series["receiver"], higher_is_better=False),
        best(series[bare], higher_is_better=False),
        BARE_LABELS[bare],
        higher_is_better=False,
        **extra,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""
    with Bench("receiver", "webhooks/s and latency of POST /webhooks/pax8", argv) as bench:
        seconds = 3.0 if bench.quick else 10.0
        warmup = 1.0 if bench.quick else 2.0
        latency_seconds = 3.0 if bench.quick else 10.0
        stack = new_stack(bench)
        try:
            webs: list[Web] = [
                start_web(stack, "bare-plain", "bench.bare_plain:app"),
                start_web(stack, "bare-send-task", "bench.bare_send_task:app"),
                start_web(stack, "receiver"),
            ]
            peaks: dict[str, list[float]] = {web.name: [] for web in webs}
            wrk_p99: dict[str, list[float]] = {web.name: [] for web in webs}
            cpu_ms: dict[str, list[float]] = {web.name: [] for web in webs}
            for round_number in range(1, bench.args.rounds + 1):
                for web in webs:
                    result, cpu = wrk_peak(web, warmup, seconds)
                    cpu_ms[web.name].append(cpu)
                    peaks[web.name].append(result.rate)
                    wrk_p99[web.name].append(result.p99_ms)
                    bench.log(
                        f"round {round_number} peak {web.name}: {result.rate:,.0f}/s "
                        f"({result.ok} 2xx, {result.bad} other, {result.socket_errors} socket "
                        f"errors; wrk p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms "
                        f"at 8 connections; {cpu_ms[web.name][-1]:.2f} CPU ms/request)"
                    )
                    if result.bad or result.socket_errors:
                        bench.details[f"{web.name} round {round_number} errors"] = (
                            f"{result.bad} non-2xx, {result.socket_errors} socket errors"
                        )
            peak = {name: best(values) for name, values in peaks.items()}
            rate = peak["receiver"] / 2
            paced_p50: dict[str, list[float]] = {web.name: [] for web in webs}
            paced_p99: dict[str, list[float]] = {web.name: [] for web in webs}
            paced_rate: dict[str, list[float]] = {web.name: [] for web in webs}
            for round_number in range(1, bench.args.rounds + 1):
                for web in webs:
                    paced = run_wrk(web.url, latency_seconds, pace_ms=8 * 1000 / rate)
                    paced_p50[web.name].append(paced.p50_ms)
                    paced_p99[web.name].append(paced.p99_ms)
                    paced_rate[web.name].append(paced.rate)
                    bench.log(
                        f"round {round_number} paced wrk {web.name}: {paced.rate:,.0f}/s, "
                        f"p50 {paced.p50_ms:.1f} ms, p99 {paced.p99_ms:.1f} ms "
                        f"({paced.ok} 2xx, {paced.bad} other)"
                    )
            p50: dict[str, list[float]] = {web.name: [] for web in webs}
            p99: dict[str, list[float]] = {web.name: [] for web in webs}
            for round_number in range(1, bench.args.rounds + 1):
                for web in webs:
                    load = run_load(
                        bench.tmp / "load",
                        web.port,
                        generate={
                            "path": "/webhooks/pax8",
                            "template": WEBHOOK_TEMPLATE,
                            "count": int(rate * (latency_seconds + WARMUP)),
                        },
                        rate=rate,
                        concurrency=256,
                    )
                    latencies = load.latencies_ms(warmup=WARMUP)
                    achieved = len(load.rows) / load.seconds
                    if achieved < 0.95 * rate:
                        # The offered rate was not sustained: these latencies are queueing.
                        bench.details[f"{web.name} round {round_number} saturated"] = (
                            f"achieved {achieved:,.0f}/s of {rate:,.0f}/s offered"
                        )
                    p50[web.name].append(percentile(latencies, 50))
                    p99[web.name].append(percentile(latencies, 99))
                    bench.log(
                        f"round {round_number} latency {web.name} at {rate:,.0f}/s: "
                        f"p50 {p50[web.name][-1]:.1f} ms, p99 {p99[web.name][-1]:.1f} ms "
                        f"(statuses {load.statuses()}, achieved "
                        f"{achieved:,.0f}/s)"
                    )
            ledger = stack.ledger.counts()
            bench.details["ledger after the run"] = ledger
        finally:
            stack.stop()
        ratio = peak["receiver"] / peak["bare-send-task"]
        bench.add(
            Comparison(
                "acknowledged webhooks/s (peak)",
                "/s",
                peak["receiver"],
                peak["bare-send-task"],
                BARE_LABELS["bare-send-task"],
                target="≥ 0.8 × bare",
                met=ratio >= 0.8,
            )
        )
        bench.add(
            Comparison(
                "acknowledged webhooks/s (peak)",
                "/s",
                peak["receiver"],
                peak["bare-plain"],
                BARE_LABELS["bare-plain"],
            )
        )
        bench.add(
            Comparison(
                "gunicorn CPU per webhook (at peak)",
                "ms",
                best(cpu_ms["receiver"], higher_is_better=False),
                best(cpu_ms["bare-send-task"], higher_is_better=False),
                BARE_LABELS["bare-send-task"],
                higher_is_better=False,
                note="less noisy than throughput on a shared machine",
            )
        )
        paced_p99_receiver = best(paced_p99["receiver"], higher_is_better=False)
        achieved = best(paced_rate["receiver"])
        bench.add(
            latency_row(f"p50 latency at ~{achieved:,.0f}/s (half peak, paced wrk)", paced_p50)
        )
        bench.add(
            latency_row(
                f"p99 latency at ~{achieved:,.0f}/s (half peak, paced wrk)",
                paced_p99,
                target="< 25 ms",
                met=paced_p99_receiver < 25,
            )
        )
        bench.add(latency_row(f"p50 latency at {rate:,.0f}/s (half peak, open loop)", p50))
        bench.add(
            latency_row(
                f"p99 latency at {rate:,.0f}/s (half peak, open loop)",
                p99,
                note="Python open-loop client; see saturated rounds",
            )
        )
        bench.add(
            latency_row(f"p99 latency at {rate:,.0f}/s (half peak, open loop)", p99, "bare-plain")
        )
        bench.details["peak rounds (/s)"] = {k: [round(v) for v in vs] for k, vs in peaks.items()}
        bench.details["wrk p99 at 8 connections (ms)"] = {
            k: [round(v, 1) for v in vs] for k, vs in wrk_p99.items()
        }
        bench.details["p99 rounds (ms)"] = {k: [round(v, 1) for v in vs] for k, vs in p99.items()}
    return 0


if __name__ == "__main__":
    sys.exit(main())
