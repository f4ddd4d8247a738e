"""The fault suite: every test injects one fault into real processes and ends by counting.

Each test calls :func:`tally` with what went in and what came out; the counts are
printed in a table at the end of the run (and asserted in the test itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import explicit_settings
from fulfillment.ledger.refs import Ref, Scope
from tests.support.adapters import calls
from tests.support.procs import Proc, wait_until
from tests.support.stack import Stack, unique_domain
from tests.support.tables import carry
from vendors.example import ExampleAdapter


@dataclass
class Tally:
    """One fault test's counts."""

    fault: str
    sent: int
    results: int
    provisioned: int
    duplicates: int
    note: str = ""


TALLIES: list[Tally] = []

# Short task limits, so a hung call is cut in seconds. The visibility timeout and the
# liveness settings are the defaults ("" is unset): a dead worker's orders come back by its
# heartbeat's end (WORKER_LOST_AFTER_SECONDS), never by a shortened timeout.
FAULT_ENV = {
    "TASK_SOFT_TIME_LIMIT_SECONDS": "8",
    "TASK_TIME_LIMIT_SECONDS": "10",
    "RETRY_BACKOFF_MAX_SECONDS": "5",
    "VISIBILITY_TIMEOUT_SECONDS": "",
    "WORKER_HEARTBEAT_SECONDS": "",
    "WORKER_LOST_AFTER_SECONDS": "",
}

LOST_AFTER = explicit_settings().worker_lost_after_seconds
"""``WORKER_LOST_AFTER_SECONDS``'s default, which the fault suite runs with."""
HEARTBEAT = explicit_settings().worker_heartbeat_seconds
"""``WORKER_HEARTBEAT_SECONDS``'s default."""


def tally(
    fault: str, sent: int, results: int, provisioned: int, duplicates: int, note: str = ""
) -> None:
    """Record (for the summary table) what a fault test counted."""
    TALLIES.append(Tally(fault, sent, results, provisioned, duplicates, note))
    print(
        f"[{fault}] sent={sent} results={results} provisioned={provisioned} "
        f"duplicates={duplicates} {note}"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A pytestmark in a conftest marks nothing (pytest reads it from test modules only).
    for item in items:
        if "/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(autouse=True)
def _counts_table(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, its counts go to the table printed at the end of the run."""
    start = len(TALLIES)
    yield
    header = f"{'fault':<58} {'sent':>6} {'results':>8} {'vendor':>7} {'dupes':>6}  note"
    rows = []
    for t in TALLIES[start:]:
        counts = f"{t.sent:>6} {t.results:>8} {t.provisioned:>7} {t.duplicates:>6}"
        rows.append(f"{t.fault:<58} {counts}  {t.note}")
    carry(request.node, "fault suite counts", [header], rows)


def example_provisionings(
    stack: Stack, request_ids: Iterable[str], simulation: bool = False
) -> dict[str, int]:
    """How many times the example vendor carried out each request."""
    wanted = set(request_ids)
    counts = dict.fromkeys(wanted, 0)
    for entry in ExampleAdapter(client=stack.redis()).provisionings(simulation):
        if entry["requestId"] in wanted:
            counts[entry["requestId"]] += 1
    return counts


def recorded_provisionings(stack: Stack, request_ids: Iterable[str]) -> dict[str, int]:
    """How many times a recording test adapter (``tests.support.adapters``) provisioned each."""
    return {r: len(calls(stack.redis(), r, "provisioned")) for r in request_ids}


def slow_stack(tmp_path: Path, seconds: float, **env: str) -> Stack:
    """A stack whose vendor (``SlowAdapter``) takes ``seconds`` per order."""
    return Stack(
        tmp_path,
        env={
            **FAULT_ENV,
            "VENDOR_ADAPTER": "tests.support.adapters:SlowAdapter",
            "SLOW_ADAPTER_SECONDS": f"{seconds:g}",
            **env,
        },
    )


POOLS = ("prefork", "gevent")
"""Every ``WORKER_POOL``: the faults that kill, freeze and partition run under each."""


@dataclass(frozen=True)
class WorkerPool:
    """The pool (``WORKER_POOL``) a fault test's workers run, and what differs by pool:
    which process runs an order, and so how soon a killed one's message is back."""

    name: str

    @property
    def env(self) -> dict[str, str]:
        """The setting, for a stack's environment."""
        return {"WORKER_POOL": self.name}

    @property
    def green(self) -> bool:
        """Orders run as greenlets of the worker's main process (gevent)."""
        return self.name == "gevent"

    @property
    def redelivery_seconds(self) -> float:
        """About how long after the process running an order is SIGKILLed its message is
        taken again: billiard notices a dead pool child and hands its message back in about
        5 s (prefork); under gevent that process is the worker, whose messages come back
        once its heartbeat is gone (another worker running)."""
        return LOST_AFTER + 2 * HEARTBEAT + 5 if self.green else 5.0

    def kill_running(self, stack: Stack, worker: Proc) -> int:
        """SIGKILL the process running ``worker``'s orders: its (first) pool child under
        prefork; the worker itself under gevent (start another to take its messages).
        Returns the pid."""
        if not self.green:
            return stack.kill_pool_child(worker)
        pid = worker.pid
        worker.kill()
        return pid


@pytest.fixture(params=POOLS, scope="module")
def pool(request: pytest.FixtureRequest) -> WorkerPool:
    """Each ``WORKER_POOL`` in turn (module scope, so module-wide stacks can use it)."""
    return WorkerPool(str(request.param))


def results_by_request(stack: Stack, request_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The results the sandbox (Pax8) holds, per request."""
    wanted = set(request_ids)
    found: dict[str, list[dict[str, Any]]] = {r: [] for r in wanted}
    for result in stack.sandbox.results():
        if result["provisionRequestId"] in wanted:
            found[result["provisionRequestId"]].append(result)
    return found


def bulk_notifications(
    stack: Stack, count: int, request_type: str = "NetNew"
) -> list[dict[str, Any]]:
    """``count`` notifications for requests the sandbox holds (acknowledged, not delivered).

    Built from the bulk answer's ids and a template, each NetNew with its own domain,
    so ten thousand cost one control call.
    """
    created = stack.sandbox.bulk(
        count, attempt_status="Acknowledged", order={"provisionRequest": {"type": request_type}}
    )
    bodies = []
    for item in created:
        bodies.append(
            {
                "isSimulation": False,
                "provisionRequest": {
                    "id": item["id"],
                    "type": request_type,
                    "companyId": item["id"],
                    "companyDomain": unique_domain(),
                    "subscriptionId": item["id"],
                    "partnerId": item["id"],
                    "quantity": 1,
                },
                "provisionDetail": {"id": item["detailId"], "provisionRequestId": item["id"]},
                "provisionAttempt": {
                    "id": item["attemptId"],
                    "provisionDetailId": item["detailId"],
                    "status": "Acknowledged",
                },
            }
        )
    return bodies


def wait_all_reported(stack: Stack, ids: list[str], timeout: float) -> None:
    """Wait until every request in ``ids`` is reported."""

    def done() -> bool:
        refs = [Ref(Scope.PAX8, i) for i in ids]
        states = stack.ledger.states(refs).states
        return all(states.get(ref, ("",))[0] == "reported" for ref in refs)

    wait_until(
        done,
        timeout,
        0.25,
        message=lambda: f"not all reported: {stack.ledger.counts()}\n{stack.describe()}",
    )


def count_and_check(
    stack: Stack,
    fault: str,
    ids: list[str],
    note: str = "",
    results_each: int = 1,
    provisioned: Mapping[str, int] | None = None,
) -> None:
    """Tally and assert: ``results_each`` results per order, one vendor provisioning each.

    ``provisioned`` counts per order when the vendor is not the example adapter.
    """
    results = results_by_request(stack, ids)
    vendor = example_provisionings(stack, ids) if provisioned is None else provisioned
    total_results = sum(len(v) for v in results.values())
    duplicates = sum(max(0, n - 1) for n in vendor.values()) + sum(
        max(0, len(v) - results_each) for v in results.values()
    )
    tally(fault, len(ids), total_results, sum(vendor.values()), duplicates, note)
    assert all(len(v) == results_each for v in results.values()), "missing or extra results"
    assert set(vendor.values()) == {1}, "an order was provisioned twice, or never"
