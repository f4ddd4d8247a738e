"""``python -m bench.reconcile``: one reconciliation over 10,000 unfulfilled requests.

The sandbox holds 10,000 unfulfilled NetNew requests whose latest attempt is ``Failed``
(``/sandbox/bulk``), and the ledger already has 9,990 of them in flight (``queued``,
written with ``Ledger.accept`` + ``mark_queued``); 10 are unknown, as if their webhooks
were lost. Then, each with a fresh Pax8 client (so each pays its token calls):

* **bare**: page ``GET /provision-requests/unfulfilled`` for both environments with
  ``Pax8Client.pages`` (the least any reconciliation must do);
* **project**: ``fulfillment.workflow.reconcile.reconcile(..., force=True)`` with a recording
  publisher: the listing, a ledger lookup per page, ≤ 3 calls per unknown request, the
  ledger scan.

Wall time and Pax8 calls (the sandbox's ``/sandbox/calls`` counter) of each. Target (the
issue): calls = pages + ≤ 3 per unknown request.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import redis

from bench.common import Bench, Comparison, best, new_stack
from config.settings import build_settings
from fulfillment.ledger import Ledger, Notice
from fulfillment.runtime.clients import pax8_client
from fulfillment.workflow.policies import policies_from
from fulfillment.workflow.reconcile import reconcile
from pax8.models import ProvisionRequest
from tests.support.publisher import RecordingPublisher
from tests.support.stack import Stack


def prepare(bench: Bench, stack: Stack, total: int, known: int) -> None:
    """A fresh sandbox backlog of ``total`` requests, ``known`` of them in the ledger."""
    stack.sandbox.reset()
    stack.redis().flushdb()
    created: list[dict[str, str]] = []
    while len(created) < total:
        created += stack.sandbox.bulk(min(5000, total - len(created)), attempt_status="Failed")
    started = time.monotonic()
    ledger = Ledger(redis.Redis.from_url(stack.redis_server.url))
    for item in created[:known]:
        notice = Notice(
            request_id=item["id"],
            detail_id=item["detailId"],
            attempt_id=item["attemptId"],
            type="NetNew",
            simulation=False,
            payload="{}",
            webhook_id=str(uuid.uuid4()),
        )
        ledger.accept(notice)
        ledger.mark_queued(notice.ref, item["detailId"])
    ledger.redis.close()
    bench.log(
        f"backlog: {total:,} unfulfilled at the sandbox, {known:,} in the ledger "
        f"(written in {time.monotonic() - started:.1f}s)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 unless something failed outright."""
    with Bench("reconcile", "one reconciliation over a large unfulfilled backlog", argv) as bench:
        total = 1_000 if bench.quick else 10_000
        unknown = 10
        stack = new_stack(bench)
        try:
            os.environ.update(stack.env)
            settings = build_settings()
            policy = policies_from(settings).reconcile
            times: dict[str, list[float]] = {"project": [], "bare": []}
            calls: dict[str, list[int]] = {"project": [], "bare": []}
            for round_number in range(1, bench.args.rounds + 1):
                prepare(bench, stack, total, total - unknown)

                stack.sandbox.reset_calls()
                with pax8_client(settings) as client:
                    started = time.monotonic()
                    pages = 0
                    listed = 0
                    for simulation in (False, True):
                        for page in client.pages(
                            "/provision-requests/unfulfilled",
                            ProvisionRequest,
                            simulation=simulation,
                            size=policy.page_size,
                        ):
                            pages += 1
                            listed += len(page.content)
                    times["bare"].append(time.monotonic() - started)
                calls["bare"].append(stack.sandbox.calls()["total"])
                bench.log(
                    f"round {round_number} bare listing: {listed:,} requests in {pages} pages, "
                    f"{times['bare'][-1]:.2f}s, {calls['bare'][-1]} calls"
                )

                stack.sandbox.reset_calls()
                publisher = RecordingPublisher()
                with pax8_client(settings) as client:
                    ledger = Ledger(redis.Redis.from_url(stack.redis_server.url))
                    started = time.monotonic()
                    summary = reconcile(
                        ledger, client, publisher, policy, force=True, routes=settings.routes
                    )
                    times["project"].append(time.monotonic() - started)
                    ledger.redis.close()
                snapshot = stack.sandbox.calls()
                calls["project"].append(snapshot["total"])
                bench.log(
                    f"round {round_number} reconcile: {times['project'][-1]:.2f}s, "
                    f"{calls['project'][-1]} calls ({snapshot['by_operation']}); seen "
                    f"{summary.seen}, in flight {summary.in_flight}, enqueued {summary.enqueued}, "
                    f"attempts created {summary.attempts_created}, errors {summary.errors[:3]}"
                )
                if len(publisher.provisioned) != unknown or summary.in_flight != total - unknown:
                    raise SystemExit(
                        f"reconcile enqueued {len(publisher.provisioned)} (expected {unknown}) "
                        f"and saw {summary.in_flight} in flight (expected {total - unknown})"
                    )
                bench.details[f"round {round_number} calls by operation"] = snapshot["by_operation"]
        finally:
            stack.stop()
        project_calls = min(calls["project"])
        bare_calls = min(calls["bare"])
        bench.add(
            Comparison(
                f"one reconciliation, {total:,} unfulfilled ({unknown} unknown)",
                "s",
                best(times["project"], higher_is_better=False),
                best(times["bare"], higher_is_better=False),
                "paging the listing with Pax8Client",
                higher_is_better=False,
            )
        )
        bench.add(
            Comparison(
                "Pax8 calls of that reconciliation",
                "calls",
                project_calls,
                bare_calls,
                "paging the listing with Pax8Client",
                higher_is_better=False,
                target=f"≤ listing + 3 × {unknown}",
                met=project_calls <= bare_calls + 3 * unknown,
            )
        )
        bench.details["page size"] = policy.page_size
        bench.details["wall-time rounds (s)"] = {
            k: [round(v, 2) for v in vs] for k, vs in times.items()
        }
        bench.details["calls rounds"] = calls
        bench.details["calls include"] = "one token call per environment (production, simulation)"
    return 0


if __name__ == "__main__":
    sys.exit(main())
