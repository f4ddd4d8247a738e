"""``fulfill certify`` against a real stack: the sandbox plays Pax8's simulation environment
(order events, webhook delivery, results read back), the receiver is gunicorn, the worker
runs the vendor adapter; the command runs as a user runs it.

Green: eight types in their sequences and the failure path, both reports written, every
result found at Pax8 once, nothing asked of production. From another host (no ledger), for
a subset of types, with a failure case given. Red: no simulation credentials (nothing
posted), a failure case the vendor accepts, a worker that is gone (bounded wait), and an
adapter that refuses one type (that type named; the rest of its sequence still passes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.redis_server import free_port
from tests.support.procs import Proc
from tests.support.stack import Stack
from tests.test_cli import fulfill, run

TYPES = ["NetNew", "Update", "ChangeProduct", "Renewal", "Deprovision", "TrialCreate",
         "TrialConvert", "PartnerEnrollment"]  # fmt: skip
ORDER_EVENTS = "POST /v2/provision-simulations/order-events"


class Deployment:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.worker: Proc | None = None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    stack = Stack(tmp_path_factory.mktemp("certify"))
    stack.env["PUBLIC_URL"] = stack.receiver_url
    out = Deployment(stack)
    try:
        stack.start_receiver()
        out.worker = stack.start_worker()
        yield out
    finally:
        stack.stop()


def report(directory: Path) -> tuple[dict[str, Any], str]:
    data = json.loads((directory / "pax8-certification.json").read_text())
    return data, (directory / "pax8-certification.md").read_text()


def calls(stack: Stack) -> dict[str, Any]:
    return stack.sandbox.calls()


def production_calls(stack: Stack) -> int:
    """Pax8 calls made with a production token (the token calls included)."""
    return sum(calls(stack)["by_environment"].get("production", {}).values())


def test_certify_passes_every_type_and_the_failure_path(
    deployment: Deployment, tmp_path: Path
) -> None:
    stack = deployment.stack
    before = calls(stack)
    production_before = production_calls(stack)
    production_requests = len(stack.sandbox.requests("production"))
    out = tmp_path / "r"
    result = fulfill(stack, "certify", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith(
        "PASSED: 8 of 8 order types passed; failure path passed."
    )
    assert "no production data is touched" in result.stderr
    assert f"Pax8 delivers simulated orders to {stack.receiver_url}/webhooks/pax8" in (
        result.stderr
    )
    data, markdown = report(out)

    # Said first, in both: simulation only.
    assert markdown.startswith(
        "# Pax8 provisioning certification: PASSED\n\n> **Simulation only.**"
    )
    assert "never touches production data" in markdown.split("\n")[2]
    assert data["simulationOnly"] is True and "never touches production data" in data["notice"]
    assert data["passed"] is True and data["version"]
    assert [(t["type"], t["passed"]) for t in data["types"]] == [(t, True) for t in TYPES]
    assert data["pax8"]["webhookUrl"] == f"{stack.receiver_url}/webhooks/pax8"
    assert data["deployment"]["ledgerRead"] is True

    orders = data["orders"]
    assert [o["type"] for o in orders] == TYPES and all(o["passed"] for o in orders)
    for o in orders:
        assert o["requestId"] and o["detailId"] and o["attemptId"] and o["resultId"], o
        assert o["result"] == "Success" and o["webhook"] == "Acknowledged"
        seconds = o["seconds"]
        assert 0 <= seconds["webhook"] <= seconds["result"], o
        assert 0 <= seconds["outcome"] <= seconds["result"] + 1, o
        # Pax8 holds exactly this one result for the order.
        held = stack.sandbox.request(o["requestId"])
        assert held["environment"] == "simulation"
        assert [r["id"] for r in held["results"]] == [o["resultId"]]
        assert held["results"][0]["status"] == "Success"
    # The sequences: one subscription each, the vendor's ids carried from the first order.
    subscription = {o["subscriptionId"] for o in orders[:5]}
    trial = {o["subscriptionId"] for o in orders[5:7]}
    assert len(subscription) == 1 and len(trial) == 1 and subscription != trial
    created = orders[0]["externalIds"]["externalProvisionerSubscriptionId"]
    assert all(o["externalIds"]["externalProvisionerSubscriptionId"] == created
               for o in orders[1:5])  # fmt: skip
    later = stack.sandbox.request(orders[1]["requestId"])["details"][-1]["details"]
    assert later["externalProvisionerSubscriptionId"] == created

    failure = data["failurePath"]
    assert failure["ran"] and failure["passed"]
    assert "already in use" in failure["order"]["message"]
    assert failure["order"]["result"] == "Fail" and failure["order"]["role"] == "failure-path"
    assert "## Failure path" in markdown and "already in use" in markdown

    # Nothing was asked of production: no call with a production token, no new request.
    after = calls(stack)
    assert production_calls(stack) == production_before
    assert sum(after["by_environment"]["simulation"].values()) > 9
    assert len(stack.sandbox.requests("production")) == production_requests
    assert after["by_operation"][ORDER_EVENTS] - before["by_operation"].get(ORDER_EVENTS, 0) == 9


def test_certify_from_another_host_judges_from_pax8_alone(
    deployment: Deployment, tmp_path: Path
) -> None:
    """No ledger (REDIS_URL reaches nothing), a subset of types (NetNew comes as setup), and
    a failure case of another type."""
    stack = deployment.stack
    result = fulfill(
        stack, "certify", "--types", "Renewal,PartnerEnrollment",
        "--fail-case", "type=Update", "--out", str(tmp_path),
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the ledger: not read (REDIS_URL does not answer" in result.stderr
    data, markdown = report(tmp_path)
    assert data["deployment"]["ledgerRead"] is False
    assert [(o["label"], o["role"]) for o in data["orders"]] == [
        ("NetNew (setup)", "setup"), ("Renewal", "required"),
        ("PartnerEnrollment", "required"),
    ]  # fmt: skip
    assert [t["type"] for t in data["types"]] == ["Renewal", "PartnerEnrollment"]
    for o in data["orders"]:
        assert set(o["seconds"]) == {"webhook", "result"}, o  # no ledger, no outcome time
    failure = data["failurePath"]
    assert failure["passed"] and failure["note"] == "--fail-case type=Update"
    assert "is unknown to the vendor" in failure["order"]["message"]
    assert "Ledger read | no (judged from Pax8 alone)" in markdown


def test_certify_refuses_to_run_without_simulation_credentials(deployment: Deployment) -> None:
    stack = deployment.stack
    before = calls(stack)["by_operation"].get(ORDER_EVENTS, 0)
    result = run(stack.env, "certify", drop=("PAX8_SIMULATION_CLIENT_ID",
                                             "PAX8_SIMULATION_CLIENT_SECRET"))  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr.startswith(
        "fulfillment: configuration error: PAX8_SIMULATION_CLIENT_ID: not set; fulfill certify "
        "runs against Pax8's simulation environment only"
    )
    assert calls(stack)["by_operation"].get(ORDER_EVENTS, 0) == before
    assert production_calls(stack) == 0


def test_certify_waits_for_pax8_to_count_the_webhook(deployment: Deployment) -> None:
    """Pax8 answers the order event before it counts the delivery (the attempt still
    Issued, as when its delivery is slow): certify polls the attempt, then the result."""
    stack = deployment.stack
    stack.sandbox.add_fault(method="POST", path="webhook", action="hold_ack", seconds=2.0, times=1)
    try:
        result = fulfill(stack, "certify", "--types", "PartnerEnrollment", "--json")
    finally:
        stack.sandbox.clear_faults()
    assert result.returncode == 0, result.stdout + result.stderr
    (only,) = json.loads(result.stdout)["orders"]
    assert only["passed"] and only["webhook"] == "Acknowledged"
    assert 2.0 <= only["seconds"]["webhook"] <= only["seconds"]["result"], only
    assert "waiting for the webhook" in result.stderr


def test_a_failure_case_the_vendor_accepts_fails_the_run(
    deployment: Deployment, tmp_path: Path
) -> None:
    result = fulfill(deployment.stack, "certify", "--types", "PartnerEnrollment",
                     "--fail-case", "quantity=3", "--json")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["types"] == [{"type": "PartnerEnrollment", "passed": True}]
    failure = data["failurePath"]["order"]
    assert failure["result"] == "Success" and not failure["passed"]
    assert failure["problem"].startswith("the vendor accepted it")
    assert "FAILED: 1 of 1 order types passed; failure path failed." in result.stderr


def test_an_order_without_a_result_fails_within_the_timeout(deployment: Deployment) -> None:
    assert deployment.worker is not None
    deployment.worker.stop()
    result = fulfill(deployment.stack, "certify", "--types", "PartnerEnrollment",
                     "--timeout", "3")  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no result at Pax8 within 3s (the ledger has it queued)" in result.stdout
    assert "waiting for the result at Pax8" in result.stderr
    assert "FAILED: 0 of 1 order types passed (failed: PartnerEnrollment)" in result.stdout


def test_certify_names_the_type_the_adapter_refuses(deployment: Deployment, tmp_path: Path) -> None:
    stack = deployment.stack
    deployment.worker = stack.start_worker(
        "worker-refusing",
        SIMULATION_VENDOR_ADAPTER="tests.support.adapters:NoChangeProductAdapter",
    )
    result = fulfill(stack, "certify", "--out", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith(
        "FAILED: 7 of 8 order types passed (failed: ChangeProduct); failure path passed."
    )
    row = next(line for line in result.stdout.splitlines() if line.startswith("ChangeProduct"))
    assert "FAILED" in row and "the vendor refused it: This subscription cannot move" in row
    data, markdown = report(tmp_path)
    assert {t["type"]: t["passed"] for t in data["types"]} == {
        kind: kind != "ChangeProduct" for kind in TYPES
    }
    # The refusal is one type's: the rest of the subscription's sequence still ran and passed.
    by_type = {o["type"]: o for o in data["orders"]}
    assert by_type["ChangeProduct"]["result"] == "Fail"
    assert by_type["Renewal"]["passed"] and by_type["Deprovision"]["passed"]
    assert markdown.startswith("# Pax8 provisioning certification: FAILED")
    assert "| ChangeProduct | FAILED |" in markdown
