"""``python -m bench.burst``: 10,000 webhooks at once; time to accept them all and to drain.

On one Redis and one sandbox:

* the project: the receiver (Procfile ``web``, 2 sync workers) and one worker
  (``worker``, prefork c=2) with the ``example`` vendor;
* the bare pipeline: ``bench.bare_send_task:app`` (same ``web`` line) in front of the
  bare worker ``bench.bare_celery`` (same ``worker`` line), one result POST per task.

The sandbox holds N NetNew requests with an Acknowledged attempt; the load generator
(2 processes, 64 connections in all) sends their N notifications as fast as it can;
a 503 or a connection error is retried with the same notification (≤ 3 times, ≤ 1 s
apart: a redelivery; Pax8 itself would make a new attempt), and every try is counted.
Then it waits (bounded) until every request has its result.

Printed: time to accept all (first send → last 2xx), time to drain (first send → last
result stored), answers by status, and the counts that prove nothing was dropped or
done twice: results per request at the sandbox, and for the project the vendor's
provisionings per request (``ExampleAdapter.provisionings``) and the ledger's states.
"""

from __future__ import annotations

import sys
from collections import Counter

from bench.common import (
    Bench,
    Comparison,
    Web,
    acknowledged_requests,
    collect,
    new_stack,
    run_load,
    start_bare_worker,
    start_web,
    webhook_items,
)
from tests.support.stack import Stack
from vendors.example import ExampleAdapter


def burst(
    bench: Bench, stack: Stack, web: Web, count: int, deadline: float, label: str
) -> tuple[dict[str, float], set[str]]:
    """Send ``count`` webhooks to ``web`` at once; the figures of the run and the ids."""
    stack.sandbox.reset()
    requests = acknowledged_requests(stack, count)
    ids = [r["id"] for r in requests]
    load = run_load(
        bench.tmp / "load",
        web.port,
        items=webhook_items(requests),
        concurrency=64,
        retries=3,
        timeout=deadline,
    )
    first = min(row[2] for row in load.rows)
    accepted = [row for row in load.rows if 200 <= row[4] < 300]
    accept_seconds = max(row[3] for row in accepted) - first if accepted else float("nan")
    statuses = load.statuses()
    bench.log(
        f"{label}: {len(accepted)}/{count} acknowledged in {accept_seconds:.1f}s "
        f"(final statuses {statuses}, {load.retried()} needed a retry)"
    )
    found = collect(stack, ids, timeout=deadline, settle=15.0)
    drain_seconds = max(found.created.values()) - first if found.created else float("nan")
    bench.log(
        f"{label}: drained in {drain_seconds:.1f}s; {found.distinct}/{count} have a result, "
        f"lost {found.lost}, duplicates {found.duplicates}, statuses {found.statuses}"
    )
    bench.details[f"{label} webhook answers"] = statuses
    bench.details[f"{label} webhooks retried (503 or no answer)"] = load.retried()
    bench.details[f"{label} results lost / duplicated"] = f"{found.lost} / {found.duplicates}"
    dropped = count - len(accepted) - sum(n for s, n in statuses.items() if s == 503)
    if dropped:
        bench.details[f"{label} webhooks neither 2xx nor 503"] = dropped
    if not found.clean():
        raise SystemExit(f"{label}: {found.lost} lost, {found.duplicates} duplicated")
    figures = {
        "accept": accept_seconds,
        "drain": drain_seconds,
        "accepted": len(accepted),
        "lost": found.lost,
        "duplicates": found.duplicates,
    }
    return figures, set(ids)


def vendor_check(bench: Bench, stack: Stack, ids: set[str]) -> None:
    """Every request provisioned exactly once at the vendor."""
    adapter = ExampleAdapter(client=stack.redis())
    per_request = Counter(
        entry["requestId"] for entry in adapter.provisionings(False) if entry["requestId"] in ids
    )
    twice = sum(1 for n in per_request.values() if n > 1)
    missing = len(ids) - len(per_request)
    bench.details["project vendor provisionings missing / twice"] = f"{missing} / {twice}"
    bench.details["project ledger states"] = stack.ledger.counts()
    if missing or twice:
        raise SystemExit(f"vendor: {missing} requests never provisioned, {twice} twice")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""
    with Bench("burst", "10,000 webhooks at once: accept all, drain all", argv) as bench:
        count = 1_000 if bench.quick else 10_000
        deadline = 120.0 if bench.quick else 300.0
        if "--rounds" not in (argv if argv is not None else sys.argv):
            bench.args.rounds = 1  # one burst is already minutes long; repeat by hand
        stack = new_stack(bench)
        try:
            receiver = start_web(stack, "receiver")
            stack.start_worker(concurrency=2)
            bare_web = start_web(stack, "bare-send-task", "bench.bare_send_task:app")
            start_bare_worker(stack, concurrency=2)
            runs: dict[str, list[dict[str, float]]] = {"project": [], "bare": []}
            for round_number in range(1, bench.args.rounds + 1):
                label = f"round {round_number} bare"
                figures, _ = burst(bench, stack, bare_web, count, deadline, label)
                runs["bare"].append(figures)
                label = f"round {round_number} project"
                figures, ids = burst(bench, stack, receiver, count, deadline, label)
                runs["project"].append(figures)
                vendor_check(bench, stack, ids)
        finally:
            stack.stop()
        for key, metric in (("accept", "time to accept all"), ("drain", "time to drain all")):
            bench.add(
                Comparison(
                    f"{count:,} webhooks: {metric}",
                    "s",
                    min(run[key] for run in runs["project"]),
                    min(run[key] for run in runs["bare"]),
                    "bare route + send_task → bare task",
                    higher_is_better=False,
                )
            )
        lost = max(run["lost"] + run["duplicates"] for run in runs["project"])
        bench.add(
            Comparison(
                f"{count:,} webhooks: results lost + duplicated",
                "",
                lost,
                max(run["lost"] + run["duplicates"] for run in runs["bare"]),
                "bare route + send_task → bare task",
                higher_is_better=False,
                target="0",
                met=lost == 0,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
